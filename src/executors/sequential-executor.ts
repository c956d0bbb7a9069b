import type { Logger } from 'pino';
import { BaseExecutor, type RunTask, type Workload } from './base-executor.ts';

/** Runs one task instance at a time, in this process. For tests, debugging and the demo. */
export class SequentialExecutor extends BaseExecutor {
  readonly #runTask: RunTask;
  readonly #abort = new AbortController();
  #current: Promise<void> | undefined;

  constructor(options: { runTask: RunTask; logger: Logger }) {
    super({ parallelism: 1, logger: options.logger });
    this.#runTask = options.runTask;
  }

  protected override executeAsync(workload: Workload): void {
    this.#current = this.#runTask(workload.key, this.#abort.signal, (change) => this.onTaskState(change)).then(
      (result) => this.changeState(workload.key, { key: workload.key, state: 'success', result }),
      (error: unknown) => {
        this.log.error({ err: error }, 'task run failed outside the task');
        this.changeState(workload.key, { key: workload.key, state: 'failed', info: (error as Error).message });
      },
    );
  }

  override async end(): Promise<void> {
    await this.#current;
  }

  override async terminate(): Promise<void> {
    this.#abort.abort(new Error('executor terminated'));
    await this.#current;
  }
}
