import { Keyring } from './keyring.ts';
import { maskSecret } from './masker.ts';

/*
 * The keys this process encrypts and decrypts with. Installed once at start by the CLI (from
 * TSFLOW_SECRET_KEY or the embedded setup's key file, `cli/secret-keys.ts`) and by a worker process
 * from its init message. Module-level on purpose: the deferral write, the trigger claim and a task's
 * `getConnection` run deep in code that is handed a database, not a configuration, and every one of
 * them must use the same keys.
 */

export class NoSecretKeyError extends Error {
  override name = 'NoSecretKeyError';
}

interface Installed {
  readonly keyring: Keyring | undefined;
  /** Why there is no keyring, for the error a secret write gives. */
  readonly missing: string;
}

const NOT_CONFIGURED =
  'TSFLOW_SECRET_KEY is not set, so secrets cannot be stored with TSFLOW_DATABASE_URL: set TSFLOW_SECRET_KEY to one or more keys ' +
  '(comma-separated, the first encrypts; generate one with tsflow secrets generate-key), the same on every tsflow process';

const state: { current: Installed } = { current: { keyring: undefined, missing: NOT_CONFIGURED } };

/** Installs this process's keyring (undefined: none configured; `missing` explains why, if not the usual reason). */
export function installKeyring(keyring: Keyring | undefined, missing: string = NOT_CONFIGURED): void {
  state.current = { keyring, missing };
}

/** The process's keyring, or undefined when none is configured (trigger kwargs are then stored unencrypted). */
export function currentKeyring(): Keyring | undefined {
  return state.current.keyring;
}

/** The keyring, or a NoSecretKeyError naming TSFLOW_SECRET_KEY: for storing or reading a connection or variable. */
export function requireKeyring(): Keyring {
  const { keyring, missing } = state.current;
  if (!keyring) throw new NoSecretKeyError(missing);
  return keyring;
}

/** The keys as text, to hand to a worker process over IPC. */
export function keyringSecret(): string | undefined {
  return state.current.keyring ? keyringText.get(state.current.keyring) : undefined;
}

const keyringText = new WeakMap<Keyring, string>();

/** Parses and installs keys given as text (remembering the text so it can be passed to worker processes). */
export function installKeyText(text: string, source: string): Keyring {
  const keyring = Keyring.parse(text, source);
  keyringText.set(keyring, text);
  // The keys themselves never reach a log or an error either.
  for (const key of text.split(',')) maskSecret(key.trim());
  maskSecret(text);
  installKeyring(keyring);
  return keyring;
}
