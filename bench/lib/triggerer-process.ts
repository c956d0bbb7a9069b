import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Database } from '../../src/db/database.ts';

const BIN = fileURLToPath(new URL('../../bin/tsflow.mjs', import.meta.url));
export const BENCH_TRIGGERS = fileURLToPath(new URL('../triggers/', import.meta.url));
export const BENCH_DAGS = fileURLToPath(new URL('../dags/', import.meta.url));

/** A real `tsflow triggerer` (or scheduler) process, measured from outside through /proc. */
export class DaemonProcess {
  readonly child: ChildProcess;
  /** The job row it registers (a scheduler's process also holds its DAG processor's row). */
  readonly jobType: 'triggerer' | 'scheduler';
  readonly #exited: Promise<void>;
  #stderr = '';

  private constructor(child: ChildProcess, jobType: 'triggerer' | 'scheduler') {
    this.child = child;
    this.jobType = jobType;
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-20_000);
    });
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static spawn(command: 'triggerer' | 'scheduler', url: string, args: string[], env: Record<string, string> = {}): DaemonProcess {
    const child = spawn(process.execPath, [BIN, command, ...args], {
      env: { ...process.env, TSFLOW_DATABASE_URL: url, TSFLOW_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return new DaemonProcess(child, command);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Waits until this process registered its job row; returns the job id. */
  async ready(db: Database, timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const row = await db.db
        .selectFrom('job')
        .select('id')
        .where('pid', '=', this.pid)
        .where('job_type', '=', this.jobType)
        .where('state', '=', 'running')
        .executeTakeFirst();
      if (row) return row.id;
      if (this.child.exitCode !== null) throw new Error(`daemon exited with ${this.child.exitCode}: ${this.#stderr}`);
      if (Date.now() > deadline) throw new Error(`daemon not ready after ${timeoutMs} ms: ${this.#stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Resident memory in MB. */
  async rssMb(): Promise<number> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    return kb / 1024;
  }

  /** CPU seconds used so far (user + system). */
  async cpuSeconds(): Promise<number> {
    const stat = await readFile(`/proc/${this.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // USER_HZ is 100 on Linux
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.#exited;
    clearTimeout(timer);
  }
}
