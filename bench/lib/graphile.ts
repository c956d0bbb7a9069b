import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { makeWorkerUtils, type WorkerUtils } from 'graphile-worker';

const MAIN = fileURLToPath(new URL('../graphile/graphile-worker-main.ts', import.meta.url));

export interface GraphileOptions {
  concurrency: number;
  /** Each handler also reads its job's insert commit time (one query after its start is taken; not for CPU figures). */
  timed?: boolean;
  /** How often the worker looks for jobs that fell due (jobs added for now are announced by NOTIFY). @default 2000, graphile's own */
  pollIntervalMs?: number;
}

type Message = { ready: true } | { started: number; committed?: number; id: number };

/**
 * graphile-worker 0.18, the Node.js PostgreSQL job queue tsflow is compared with, in a process of
 * its own on the scenario's database (its own schema), plus the producer side (`addJob`) in this
 * process. Handler starts come back over IPC with a sub-millisecond epoch time.
 */
export class GraphileBench {
  readonly child: ChildProcess;
  readonly utils: WorkerUtils;
  readonly #started = new Map<number, number>();
  readonly #committed = new Map<number, number>();
  readonly #waiters = new Map<number, () => void>();
  readonly #ready: Promise<void>;
  readonly #exited: Promise<void>;

  private constructor(url: string, options: GraphileOptions, utils: WorkerUtils) {
    this.utils = utils;
    const args = [url, String(options.concurrency), options.timed ? 'timed' : 'untimed', String(options.pollIntervalMs ?? 2000)];
    this.child = fork(MAIN, args, { execArgv: ['--import', 'tsx/esm'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.#exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.#ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`graphile-worker exited with ${code}`)));
      this.child.on('message', (message: Message) => {
        if ('ready' in message) return resolve();
        this.#started.set(message.id, message.started);
        if (message.committed !== undefined) this.#committed.set(message.id, message.committed);
        this.#waiters.get(message.id)?.();
      });
    });
  }

  /** Starts the worker (which migrates its schema) and the producer's pool. */
  static async start(url: string, options: GraphileOptions): Promise<GraphileBench> {
    const producer = new URL(url);
    producer.searchParams.set('application_name', 'graphile-bench-producer');
    const utils = await makeWorkerUtils({ connectionString: producer.toString() });
    await utils.migrate();
    const bench = new GraphileBench(url, options, utils);
    await bench.#ready;
    return bench;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** When the handler of job `id` started (epoch ms), once it has. */
  startedAt(id: number): number | undefined {
    return this.#started.get(id);
  }

  /** The commit time of job `id`'s insert (epoch ms), when started `timed`. */
  committedAt(id: number): number | undefined {
    return this.#committed.get(id);
  }

  get startedCount(): number {
    return this.#started.size;
  }

  /** Resolves once the handler of job `id` has started. */
  whenStarted(id: number, timeoutMs = 10_000): Promise<number> {
    const known = this.#started.get(id);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`graphile job ${id} did not start within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.set(id, () => {
        clearTimeout(timer);
        this.#waiters.delete(id);
        resolve(this.#started.get(id) as number);
      });
    });
  }

  async stop(): Promise<void> {
    await this.utils.release();
    if (this.child.exitCode === null) this.child.send('stop');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** Epoch ms with sub-millisecond precision, comparable across processes on this machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}
