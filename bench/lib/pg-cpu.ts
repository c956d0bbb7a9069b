import { readFile } from 'node:fs/promises';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.ts';

/** CPU seconds (user + system) a process has used, from /proc; undefined once it has exited. */
export async function processCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL's CPU over a window: every server process pg_stat_activity lists (client backends of
 * every database, autovacuum, WAL writer, checkpointer…), read from /proc every `everyMs`. A process
 * that starts inside the window counts from zero; one that exits counts up to its last reading. The
 * benchmark driver's own connections (application_name 'tsflow-bench': its polls, this meter) are
 * left out. Needs the server on this machine (the embedded one is).
 */
export class PgCpuMeter {
  readonly #db: Database;
  readonly #everyMs: number;
  readonly #first = new Map<number, number>();
  readonly #last = new Map<number, number>();
  readonly #kind = new Map<number, string>();
  #timer: NodeJS.Timeout | undefined;
  #sampling: Promise<void> = Promise.resolve();
  #startedAt = 0;

  constructor(db: Database, everyMs = 100) {
    this.#db = db;
    this.#everyMs = everyMs;
  }

  async start(): Promise<void> {
    this.#startedAt = Date.now();
    await this.#sample(true);
    this.#timer = setInterval(() => {
      this.#sampling = this.#sampling.then(() => this.#sample(false));
    }, this.#everyMs);
  }

  /** CPU seconds by kind of process (application name, or backend type), after `stop()`. */
  breakdown(): Record<string, number> {
    const byKind: Record<string, number> = {};
    for (const [pid, last] of this.#last) {
      const kind = this.#kind.get(pid) ?? 'unknown';
      byKind[kind] = (byKind[kind] ?? 0) + last - (this.#first.get(pid) ?? 0);
    }
    return byKind;
  }

  /** Stops and returns the CPU seconds PostgreSQL used since `start()`. */
  async stop(): Promise<number> {
    clearInterval(this.#timer);
    await this.#sampling;
    await this.#sample(false);
    let total = 0;
    for (const [pid, last] of this.#last) total += last - (this.#first.get(pid) ?? 0);
    return total;
  }

  async #sample(initial: boolean): Promise<void> {
    const { rows } = await sql<{ pid: number; started: Date | null; kind: string }>`
      SELECT pid, backend_start AS started, coalesce(nullif(application_name, ''), backend_type) AS kind
      FROM pg_stat_activity WHERE application_name IS DISTINCT FROM 'tsflow-bench'`.execute(this.#db.db);
    for (const { pid, started, kind } of rows) {
      this.#kind.set(pid, kind);
      const cpu = await processCpuSeconds(pid);
      if (cpu === undefined) continue;
      if (!this.#first.has(pid)) this.#first.set(pid, initial || (started && started.getTime() < this.#startedAt) ? cpu : 0);
      this.#last.set(pid, cpu);
    }
  }
}
