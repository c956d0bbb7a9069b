import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { BIN } from './cli.ts';

/*
 * tsflow daemons as real child processes, for the tests that kill them or their connections. Each
 * is tracked: `stopProcesses()` (in an afterEach) kills whatever a test left running.
 */

const running = new Set<ChildProcess>();

export interface DaemonProcess {
  readonly child: ChildProcess;
  /** Everything it wrote on stderr so far (JSON log lines). */
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

export function spawnDaemon(args: string[], env: Record<string, string | undefined>): DaemonProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, TSFLOW_HOME: process.env['TSFLOW_TEST_HOME'], TSFLOW_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    running.delete(child);
    resolve(code);
  }));
  return { child, stderr: () => stderr, exited };
}

export function isRunning(daemon: DaemonProcess): boolean {
  return daemon.child.exitCode === null && daemon.child.signalCode === null;
}

/** SIGKILLs every daemon process still running (and waits until each is gone). */
export async function stopProcesses(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** The pids of `pid`'s child processes, from /proc. */
export async function childPids(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …: comm may hold spaces, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) children.push(Number(entry));
  }
  return children;
}
