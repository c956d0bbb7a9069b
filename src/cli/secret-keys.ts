import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateSecretKey, type Keyring } from '../secrets/keyring.ts';
import { installKeyring, installKeyText } from '../secrets/process-keyring.ts';
import { printNotice, printWarning } from './notice.ts';
import { UsageError, type Settings } from './settings.ts';

/** The embedded setup's key file, under TSFLOW_HOME. */
export function secretKeyFile(home: string): string {
  return path.join(home, 'secret.key');
}

/**
 * Installs this process's secret keys: TSFLOW_SECRET_KEY when set; else, for the embedded database,
 * `$TSFLOW_HOME/secret.key`, created (mode 0600) on first use with a notice; else none (with
 * TSFLOW_DATABASE_URL a key must be given explicitly: every process of a deployment needs the same one).
 */
export function configureSecretKeys(settings: Settings): Keyring | undefined {
  if (settings.secretKey !== undefined) return installKeyText(settings.secretKey, 'TSFLOW_SECRET_KEY');
  if (settings.databaseUrl !== undefined) {
    installKeyring(undefined);
    return undefined;
  }
  const file = secretKeyFile(settings.home);
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
    if ((statSync(file).mode & 0o077) !== 0) printWarning(`${file} can be read by other users: chmod 600 it`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`cannot read the secret key file ${file}: ${(error as Error).message}`);
    text = generateSecretKey();
    mkdirSync(settings.home, { recursive: true });
    try {
      writeFileSync(file, `${text}\n`, { mode: 0o600, flag: 'wx' });
      printNotice(`created a secret key in ${file} (mode 0600): it encrypts connections, variables and trigger kwargs — back it up; losing it loses them`);
    } catch (raced) {
      // Another process created it first: use theirs.
      if ((raced as NodeJS.ErrnoException).code !== 'EEXIST') throw raced;
      text = readFileSync(file, 'utf8').trim();
    }
  }
  try {
    return installKeyText(text, file);
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (fix or remove the file, or set TSFLOW_SECRET_KEY)`);
  }
}
