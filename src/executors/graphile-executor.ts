import type { Logger } from 'pino';
import type { Database, Db } from '../db/database.ts';
import { assertGraphileSchemaCurrent } from '../db/migrations.ts';
import type { OnEnqueued } from '../db/scheduling.ts';
import { rowKey, tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import { adoptQueuedWithJobs, publishQueuedJobs, deleteTaskJobs, jobKey, revokeUnstartedJobs, tryStandings, tryToRun } from '../graphile/task-jobs.ts';
import { BaseExecutor, type ExecutorEvent, type RevokedWorkload, type Workload } from './base-executor.ts';

export interface GraphileExecutorOptions {
  /** Most task instances in flight (queued on a worker or running) for this scheduler; 0 = unlimited. @default 32 */
  parallelism?: number;
  database: Database;
  logger: Logger;
}

/**
 * Airflow's CeleryExecutor, with graphile-worker (in the same PostgreSQL) as the broker: the job of
 * each task instance is added in the scheduler's enqueue transaction (`onEnqueued`), so a queued task
 * instance always has its job and a job never exists for a task instance that was not queued. Any
 * `tsflow worker` listening on the task's queue runs it and records the try's states itself; `sync`
 * learns each held try's outcome from tsflow's tables (Celery's result backend is the database, as
 * here) and reports it, freeing the slot. A try whose job failed outside the task (the handler
 * threw) or vanished while the task instance is still queued is reported `failed`, and the
 * scheduler's reconciliation retries or fails it.
 */
export class GraphileExecutor extends BaseExecutor {
  readonly #database: Database;

  constructor(options: GraphileExecutorOptions) {
    super({ parallelism: options.parallelism ?? 32, logger: options.logger });
    this.#database = options.database;
  }

  override readonly onEnqueued: OnEnqueued = { publish: publishQueuedJobs };

  override async start(): Promise<void> {
    await assertGraphileSchemaCurrent(this.#database);
  }

  /** A task instance held already (its earlier part deferred, and sync has not noticed yet) is held afresh. */
  override queueWorkload(workload: Workload): boolean {
    if (!this.hasTask(workload.key)) return super.queueWorkload(workload);
    this.holdRunning(workload);
    return true;
  }

  /** Its job was published with the enqueue: launching is holding it until a worker's outcome shows. */
  protected override executeAsync(_workload: Workload): void {}

  protected override async sync(): Promise<void> {
    const held = this.runningWorkloads();
    if (held.length === 0) return;
    const tries = held.map((w) => ({ key: w.key, tryNumber: jobTry(w) }));
    const standings = await tryStandings(this.#database.db, tries);
    const failedJobs: string[] = [];
    for (const [i, standing] of standings.entries()) {
      const { key, state } = standing;
      const tryNumber = tries[i]?.tryNumber as number;
      const current = (state === 'queued' && standing.queuedTry === tryNumber) || (state === 'running' && standing.tryNumber === tryNumber);
      let event: ExecutorEvent | undefined;
      if (standing.jobError !== null) failedJobs.push(jobKey(key, tryNumber)); // reported below, or moot
      if (!current) {
        event = { key, state: 'success' }; // the worker recorded the outcome (or the try was cleared)
      } else if (standing.jobError !== null) {
        event = { key, state: 'failed', info: `the worker's job failed: ${standing.jobError}`, ...(state === 'running' ? { tryNumber } : {}) };
      } else if (state === 'queued' && !standing.jobExists) {
        event = { key, state: 'failed', info: 'its graphile-worker job is gone while the task instance is still queued' };
      }
      if (event) this.changeState(key, event);
    }
    await deleteTaskJobs(this.#database.db, failedJobs);
  }

  override async tryAdoptTaskInstances(db: Db, selfJobId: number, deadThresholdMs: number): Promise<TaskInstanceKey[]> {
    const rows = await adoptQueuedWithJobs(db, selfJobId, deadThresholdMs);
    for (const row of rows) {
      const key = rowKey(row);
      // A running row already counts its try (as a resume does): its job ran that try.
      const resuming = row.state === 'running' || row.next_method !== null;
      this.holdRunning({ key, priorityWeight: row.priority_weight, queuedAt: row.queued_at?.getTime() ?? Date.now(), tryNumber: row.try_number, resuming });
      this.log.info({ task: tiKeyString(key), state: row.state }, 'adopted a task instance of a dead scheduler');
    }
    return rows.map(rowKey);
  }

  /**
   * A job queued longer than `olderThanMs` that no worker took — none listens on its queue, or all
   * of them are full — is withdrawn, so a worker started later cannot run a try the scheduler is
   * about to retry or fail.
   */
  override async revokeStuckQueued(db: Db, olderThanMs: number): Promise<RevokedWorkload[]> {
    const cutoff = Date.now() - olderThanMs;
    const stale = this.runningWorkloads().filter((w) => w.queuedAt < cutoff);
    const revoked = await revokeUnstartedJobs(db, stale.map((w) => ({ key: w.key, tryNumber: jobTry(w) })));
    const seconds = Math.round(olderThanMs / 1000);
    return revoked.map(({ key, queue }) => {
      this.release(key);
      return { key, reason: `stuck in queued for more than ${seconds} s: no worker took it from queue '${queue}' (is a \`tsflow worker --queues ${queue}\` running, with free slots?)` };
    });
  }

  /**
   * A zombie on a remote worker cannot be killed from here, and need not be: its try heartbeat
   * finds the row changed and stops the task, and the next sync frees the slot.
   */
  override cancelTask(_key: TaskInstanceKey, _reason: string): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** Nothing runs here: the workers keep running what they took. */
  override async end(): Promise<void> {}

  override async terminate(): Promise<void> {}
}

/** The try a workload's job runs. */
function jobTry(workload: Workload): number {
  return tryToRun({ try_number: workload.tryNumber, next_method: workload.resuming ? 'resume' : null });
}
