import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { BIN } from './cli.ts';
import { childPids } from './processes.ts';

/*
 * Browser tests drive Debian's `chromium` (or any Chromium) with playwright-core, which brings no
 * browser of its own. Where it is: $TSFLOW_CHROMIUM, else `chromium` / `chromium-browser` /
 * `google-chrome` on PATH, else the usual install paths. `.ci/run` installs Debian's package when
 * apt-get exists; without one, the browser suites skip and say why.
 */

const NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
const KNOWN = ['/usr/bin/chromium', '/usr/lib/chromium/chromium', '/usr/bin/chromium-browser', '/snap/bin/chromium', '/usr/bin/google-chrome'];

/** Why the browser tests are skipped, printed as is. */
export function noChromiumMessage(): string {
  const given = process.env['TSFLOW_CHROMIUM'];
  if (given) return `browser tests skipped: TSFLOW_CHROMIUM=${given} is not an executable file (point it at a Chromium, or unset it)`;
  return "browser tests skipped: no Chromium found (install Debian's chromium or set TSFLOW_CHROMIUM)";
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium to drive, or undefined when there is none. */
export function findChromium(): string | undefined {
  const given = process.env['TSFLOW_CHROMIUM'];
  if (given) return executable(given) ? given : undefined;
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter).filter((d) => d !== '')) {
    for (const name of NAMES) if (executable(path.join(dir, name))) return path.join(dir, name);
  }
  return KNOWN.find(executable);
}

/** `--no-sandbox` when running as root (Chromium refuses to start sandboxed as root). */
export function chromiumArgs(): string[] {
  return process.getuid?.() === 0 ? ['--no-sandbox'] : [];
}

/** The pids of this process's children whose command is a Chromium (left behind by a browser not closed). */
export async function chromiumChildren(): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await childPids(process.pid)) {
    const comm = (() => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    })();
    if (/chrom/i.test(comm)) found.push(pid);
  }
  return found;
}

/** `tsflow users create --username U --role R` with the password piped on stdin. */
export function createUserWithCli(env: Record<string, string | undefined>, username: string, role: string, password: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'users', 'create', '--username', username, '--role', role], {
      env: { ...process.env, TSFLOW_HOME: process.env['TSFLOW_TEST_HOME'], TSFLOW_LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(`${password}\n`);
  });
}
