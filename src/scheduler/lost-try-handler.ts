import { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import { failFromExecutor, failStuckQueued, failZombies, type LostTry, type RetryAt } from '../db/lost-tries.ts';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import { failDeadWorkers } from '../db/workers.ts';
import type { BaseExecutor, ExecutorEvent } from '../executors/base-executor.ts';
import { retryDelay } from '../runner/retry-delay.ts';
import { DagSpec } from '../dag-bag/serialized-dag.ts';

export interface LostTryHandlerDeps {
  db: Db;
  executor: BaseExecutor;
  dagOf: (dagId: string) => DagSpec | undefined;
  logger: Logger;
  zombieThresholdMs: number;
  queuedTimeoutMs: number;
}

/**
 * The scheduler's part in tries that end outside the task: it reconciles the executor's `failed`
 * events with the database (a worker that crashed, was killed, or could not start its task), fails
 * zombies — running task instances whose heartbeat stopped — and task instances stuck in `queued`
 * by a scheduler that died. Either way the try is retried while
 * tries remain, else failed, with the reason logged and stored in the task instance's `error`.
 */
export class LostTryHandler {
  readonly #deps: LostTryHandlerDeps;
  readonly #retryAt: RetryAt;
  /** Executor events drained but not yet reconciled: kept across a failed pass (the database was unreachable). */
  #unreconciled: ExecutorEvent[] = [];

  constructor(deps: LostTryHandlerDeps) {
    this.#deps = deps;
    this.#retryAt = (key, tryNumber) => {
      const task = deps.dagOf(key.dagId)?.tasks.get(key.taskId);
      // A task no longer in the DAG folder: Airflow's default retry delay.
      return DateTime.utc().plus(task ? retryDelay(DagSpec.retrySettings(task), tryNumber) : { minutes: 5 }).toJSDate();
    };
  }

  /**
   * Drains the executor's event buffer; returns the tries it failed. An event is dropped only once
   * its reconciliation committed: when the database fails half-way, the rest wait for the next pass
   * (an event lost here would leave its task `queued` or `running` until a timeout much later).
   */
  async reconcileExecutorEvents(): Promise<LostTry[]> {
    this.#unreconciled.push(...this.#deps.executor.getEventBuffer().filter((event) => event.state === 'failed'));
    const lost: LostTry[] = [];
    while (this.#unreconciled.length > 0) {
      const found = await this.#reconcile(this.#unreconciled[0] as ExecutorEvent);
      this.#unreconciled.shift();
      if (found) lost.push(found);
    }
    return lost;
  }

  async #reconcile(event: ExecutorEvent): Promise<LostTry | undefined> {
    const reason = `the executor reported the task failed: ${event.info ?? 'unknown reason'}`;
    const lost = await failFromExecutor(this.#deps.db, event.key, { tryNumber: event.tryNumber }, reason, this.#retryAt);
    if (lost) {
      this.#deps.logger.error({ task: event.key, tryNumber: lost.tryNumber, state: lost.state, reason }, 'executor reported a failure the task did not record');
    } else {
      this.#deps.logger.debug({ task: event.key, reason }, 'executor reported a failure; the task instance had already moved on');
    }
    return lost;
  }

  /** Fails or retries zombies; a zombie this scheduler's executor still holds is cancelled there too. */
  async failZombies(): Promise<LostTry[]> {
    const { db, executor, logger, zombieThresholdMs } = this.#deps;
    const lost = await failZombies(db, zombieThresholdMs, this.#retryAt);
    for (const zombie of lost) {
      logger.error({ task: zombie.key, tryNumber: zombie.tryNumber, state: zombie.state, reason: zombie.reason }, 'zombie task instance');
      if (executor.hasTask(zombie.key)) await this.#cancel(zombie.key, zombie.reason);
    }
    return lost;
  }

  /**
   * `tsflow worker`s silent for longer than `thresholdMs`: their task instances are retried or
   * failed, their job rows marked failed, their graphile-worker jobs released.
   */
  async failDeadWorkers(thresholdMs: number): Promise<LostTry[]> {
    const dead = await failDeadWorkers(this.#deps.db, thresholdMs, this.#retryAt);
    for (const worker of dead) {
      this.#deps.logger.error({ workerJobId: worker.jobId, hostname: worker.hostname, lostTries: worker.lost.length }, 'worker presumed dead: its task instances are retried or failed');
      for (const lost of worker.lost) this.#deps.logger.error({ task: lost.key, tryNumber: lost.tryNumber, state: lost.state, reason: lost.reason }, 'task instance lost with its worker');
    }
    return dead.flatMap((w) => w.lost);
  }

  /**
   * Fails or retries task instances queued too long (Airflow's `task_queued_timeout`): those a
   * scheduler that is gone left behind, and those this executor withdrew because nothing took them.
   */
  async failStuckQueued(): Promise<LostTry[]> {
    const { db, executor, logger, queuedTimeoutMs } = this.#deps;
    const revoked = new Map((await executor.revokeStuckQueued(db, queuedTimeoutMs)).map((r) => [tiKeyString(r.key), r.reason]));
    const lost = await failStuckQueued(db, queuedTimeoutMs, executor.heldKeys(), this.#retryAt, (key) => revoked.get(tiKeyString(key)));
    for (const stuck of lost) logger.error({ task: stuck.key, state: stuck.state, reason: stuck.reason }, 'task instance stuck in queued');
    return lost;
  }

  async #cancel(key: TaskInstanceKey, reason: string): Promise<void> {
    try {
      const cancelled = await this.#deps.executor.cancelTask(key, reason);
      if (!cancelled) this.#deps.logger.warn({ task: key }, 'the executor cannot stop a zombie it runs; its slot stays taken until the task returns');
    } catch (error) {
      this.#deps.logger.error({ err: error, task: key }, 'could not cancel a zombie in the executor');
    }
  }
}
