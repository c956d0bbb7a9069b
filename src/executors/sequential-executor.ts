import type { Logger } from 'pino';
import type { TaskStateChange } from '../runner/task-runner.ts';
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
    let tryNumber: number | undefined;
    const onState = (change: TaskStateChange): void => {
      if (change.state === 'running') tryNumber = change.tryNumber;
      this.onTaskState(change);
    };
    this.#current = this.#runTask(workload.key, this.#abort.signal, onState).then(
      (result) => {
        if (result.interrupted) this.log.warn({ task: workload.key }, 'the task ignored its stop signal and may still be running in this process (the LocalExecutor would kill its worker)');
        this.changeState(workload.key, { key: workload.key, state: 'success', result });
      },
      (error: unknown) => {
        this.log.error({ err: error }, 'task run failed outside the task');
        this.changeState(workload.key, { key: workload.key, state: 'failed', info: (error as Error).message, ...(tryNumber === undefined ? {} : { tryNumber }) });
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
