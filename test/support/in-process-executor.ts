import { silentLogger } from '../../src/common/logger.ts';
import type { DagBag } from '../../src/dag-bag/dag-bag.ts';
import type { Database } from '../../src/db/database.ts';
import { BaseExecutor, type Workload } from '../../src/executors/base-executor.ts';
import { runTaskInstance } from '../../src/runner/task-runner.ts';

/**
 * Runs up to `parallelism` task instances concurrently in this process: a cheap stand-in for the
 * LocalExecutor where a test is about the scheduler (hundreds of tasks, two schedulers), not about
 * worker processes.
 */
export class InProcessExecutor extends BaseExecutor {
  readonly #db: Database;
  readonly #bag: DagBag;
  readonly #running = new Set<Promise<void>>();

  constructor(db: Database, bag: DagBag, parallelism: number) {
    super({ parallelism, logger: silentLogger() });
    this.#db = db;
    this.#bag = bag;
  }

  protected override executeAsync(workload: Workload): void {
    const { key } = workload;
    const run: Promise<void> = runTaskInstance(
      { db: this.#db.db, logger: silentLogger(), hostname: 'test', pid: process.pid, defaults: { deferrable: false }, onState: (c) => this.onTaskState(c) },
      this.#bag.getDag(key.dagId),
      key,
    )
      .then(
        (result) => this.changeState(key, { key, state: 'success', result }),
        (error: unknown) => this.changeState(key, { key, state: 'failed', info: (error as Error).message }),
      )
      .finally(() => this.#running.delete(run));
    this.#running.add(run);
  }

  override async end(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }

  override terminate(): Promise<void> {
    return this.end();
  }
}
