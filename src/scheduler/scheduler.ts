import os from 'node:os';
import type { Logger } from 'pino';
import { sleep } from '../common/sleep.ts';
import { TypedEmitter } from '../common/typed-emitter.ts';
import { backoffMs, Wakeup } from '../common/wakeup.ts';
import type { DagBag } from '../dag-bag/dag-bag.ts';
import type { Database } from '../db/database.ts';
import { endJob, heartbeatJob, registerJob } from '../db/jobs.ts';
import { assertSchemaCurrent } from '../db/migrations.ts';
import type { Notifier } from '../db/notifier.ts';
import { CANNOT_FINISH_A_RUN, Channels } from '../db/protocol.ts';
import type { LostTry } from '../db/lost-tries.ts';
import type { DagRunState, TaskInstanceKey, TaskInstanceState } from '../db/schema.ts';
import { enqueueScheduled, finishCompletedRuns, scheduleDueRetries, startQueuedRun } from '../db/scheduling.ts';
import { msUntilNextDue } from '../db/task-instances.ts';
import { deleteUnusedTriggers } from '../db/triggers.ts';
import type { BaseExecutor } from '../executors/base-executor.ts';
import type { Dag } from '../sdk/dag.ts';
import { TimeoutSweeper } from '../triggerer/timeout-sweeper.ts';
import { evaluateDependencies } from './dependency-evaluator.ts';
import { LostTryHandler } from './lost-try-handler.ts';
import { compileSchedulerOptions, type CompiledSchedulerOptions, type SchedulerOptions } from './scheduler-options.ts';
import { StartFromTrigger } from './start-from-trigger.ts';

export type { SchedulerOptions } from './scheduler-options.ts';

export interface SchedulerDeps {
  database: Database;
  dagBag: DagBag;
  executor: BaseExecutor;
  logger: Logger;
  notifier?: Notifier;
}

export interface SchedulerEvents {
  'ti:state': { key: TaskInstanceKey; state: TaskInstanceState; tryNumber?: number; error?: string };
  'run:state': { dagId: string; runId: string; state: DagRunState };
}


export type SchedulerState = 'created' | 'running' | 'stopping' | 'stopped';

/**
 * The scheduler loop: starts queued runs, moves task instances whose upstreams are done to
 * `scheduled`, brings back due retries and reschedules, enqueues scheduled work into the executor
 * (FOR UPDATE SKIP LOCKED, so several schedulers can run), reconciles what the executor reports and
 * finishes runs. It sleeps until the next due time and wakes on NOTIFY.
 */
export class Scheduler extends TypedEmitter<SchedulerEvents> {
  readonly #deps: SchedulerDeps;
  readonly #options: CompiledSchedulerOptions;
  readonly #log: Logger;
  readonly #wakeup = new Wakeup();
  readonly #stopLoop = new AbortController();
  readonly #sweeper: TimeoutSweeper;
  readonly #lostTries: LostTryHandler;
  readonly #unsubscribe: (() => void)[] = [];
  readonly #warnedMissing = new Set<string>();
  readonly #startFromTrigger: StartFromTrigger;
  #state: SchedulerState = 'created';
  #runsMayFinish = true;
  #jobId: number | undefined;
  #loop: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #lastCleanup = 0;
  #lastZombieCheck = 0;

  constructor(deps: SchedulerDeps, options: SchedulerOptions = {}) {
    super();
    this.#deps = deps;
    this.#options = compileSchedulerOptions(options);
    this.#log = deps.logger.child({ component: 'scheduler' });
    this.#lostTries = new LostTryHandler({
      db: deps.database.db,
      executor: deps.executor,
      dagOf: (dagId) => this.#dag(dagId),
      logger: this.#log,
      zombieThresholdMs: this.#options.zombieThresholdMs,
      queuedTimeoutMs: this.#options.queuedTimeoutMs,
    });
    this.#sweeper = new TimeoutSweeper({ db: deps.database.db, logger: this.#log, pollIntervalMs: this.#options.pollIntervalMs });
    this.#sweeper.on('timed-out', (keys) => {
      for (const key of keys) this.emit('ti:state', { key, state: 'scheduled' });
      this.#wakeup.nudge();
    });
    this.#startFromTrigger = new StartFromTrigger({ db: deps.database.db, dagBag: deps.dagBag, logger: this.#log });
    deps.executor.onChange = () => {
      this.#runsMayFinish = true;
      this.#wakeup.nudge();
    };
    deps.executor.onTaskState = (change) => this.emit('ti:state', change);
  }

  get state(): SchedulerState {
    return this.#state;
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { database, notifier, executor } = this.#deps;
    await assertSchemaCurrent(database);
    this.#jobId = await registerJob(database.db, { jobType: 'scheduler', hostname: os.hostname(), pid: process.pid });
    this.#log.setBindings({ jobId: this.#jobId });
    if (notifier) {
      this.#unsubscribe.push(
        notifier.on('notification', ({ channel, payload }) => {
          if (channel === Channels.ti) {
            if (!CANNOT_FINISH_A_RUN.has(payload)) this.#runsMayFinish = true;
            this.#wakeup.nudge();
          }
          if (channel === Channels.trigger && payload === 'new') this.#sweeper.nudge();
        }),
        notifier.on('reconnected', () => {
          this.#runsMayFinish = true;
          this.#wakeup.nudge();
          this.#sweeper.nudge();
        }),
      );
    }
    await executor.start();
    this.#heartbeat = setInterval(() => {
      heartbeatJob(database.db, this.#jobId as number).catch((error: unknown) => this.#log.warn({ err: error }, 'heartbeat failed'));
    }, this.#options.heartbeatIntervalMs);
    this.#sweeper.start();
    this.#state = 'running';
    this.#loop = this.#runLoop();
    this.#log.info({ executor: executor.constructor.name, parallelism: executor.parallelism }, 'scheduler started');
  }

  nudge(): void {
    this.#wakeup.nudge();
  }

  /** Stops scheduling, lets running tasks finish (the executor's `end`), and marks the job ended. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    if (this.#state !== 'running') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    this.#stopLoop.abort();
    for (const off of this.#unsubscribe) off();
    const errors: unknown[] = [];
    const step = (action: () => Promise<unknown>) => action().catch((error: unknown) => errors.push(error));
    await step(async () => this.#loop);
    await step(() => this.#sweeper.stop());
    await step(() => this.#deps.executor.end());
    await step(() => this.#reconcileExecutorEvents());
    await step(() => this.#pass()); // record what the last tasks did (finish their runs)
    clearInterval(this.#heartbeat);
    await step(() => endJob(this.#deps.database.db, this.#jobId as number, 'success'));
    this.#state = 'stopped';
    this.#log.info('scheduler stopped');
    if (errors.length > 0) throw new AggregateError(errors, 'scheduler stopped with errors');
  }

  async #runLoop(): Promise<void> {
    let failures = 0;
    while (!this.#stopLoop.signal.aborted) {
      let waitMs = this.#options.pollIntervalMs;
      try {
        await this.#pass();
        await this.#deps.executor.heartbeat();
        await this.#reconcileExecutorEvents();
        // Trigger timeouts are the sweeper's (it nudges this loop when some fire): only retries here.
        const dueInMs = await msUntilNextDue(this.#deps.database.db, 'retries');
        if (dueInMs !== null) waitMs = Math.min(waitMs, Math.max(10, dueInMs + 1));
        waitMs = Math.min(waitMs, Math.max(10, this.#lastZombieCheck + this.#options.zombieCheckIntervalMs - Date.now()));
        failures = 0;
      } catch (error) {
        if (this.#stopLoop.signal.aborted) break;
        waitMs = backoffMs(failures++, 200, 10_000);
        this.#log.error({ err: error, retryInMs: Math.round(waitMs) }, 'scheduler pass failed');
        await sleep(waitMs, this.#stopLoop.signal);
        continue;
      }
      const nudged = await this.#wakeup.wait(waitMs, this.#stopLoop.signal);
      if (!nudged) this.#runsMayFinish = true; // the safety-net poll checks everything
    }
  }

  async #pass(): Promise<void> {
    await this.#startQueuedRuns();
    if (this.#state === 'running' && Date.now() - this.#lastZombieCheck >= this.#options.zombieCheckIntervalMs) {
      this.#lastZombieCheck = Date.now();
      this.#announceLost(await this.#lostTries.failZombies());
      this.#announceLost(await this.#lostTries.failStuckQueued());
    }
    for (const key of await scheduleDueRetries(this.#deps.database.db)) this.emit('ti:state', { key, state: 'scheduled' });
    for (const change of await evaluateDependencies(this.#deps.database.db, (dagId) => this.#dag(dagId))) {
      if (change.state !== 'scheduled') this.#runsMayFinish = true;
      this.emit('ti:state', change);
    }
    // startFromTrigger sensors: scheduled → deferred here, before anything is enqueued.
    for (const { key, tryNumber } of await this.#startFromTrigger.run()) this.emit('ti:state', { key, state: 'deferred', tryNumber });
    if (this.#state === 'running') await this.#enqueue();
    // A run can only finish when a task instance reached a final state: look only then (or on a
    // poll), not on every notification of a burst of resumes.
    if (this.#runsMayFinish) {
      this.#runsMayFinish = false;
      for (const run of await finishCompletedRuns(this.#deps.database.db)) {
        this.#log.info(run, 'run finished');
        this.emit('run:state', run);
      }
    }
    if (Date.now() - this.#lastCleanup > this.#options.pollIntervalMs) {
      // Triggers whose task left deferred with no triggerer running to notice (Airflow #34906).
      this.#lastCleanup = Date.now();
      await deleteUnusedTriggers(this.#deps.database.db);
    }
  }

  async #startQueuedRuns(): Promise<void> {
    const { db } = this.#deps.database;
    const queued = await db.selectFrom('dag_run').select(['dag_id', 'run_id']).where('state', '=', 'queued').orderBy('created_at').execute();
    for (const run of queued) {
      const dag = this.#dag(run.dag_id);
      if (!dag) continue;
      const specs = [...dag.tasks.values()].map((t) => ({
        taskId: t.taskId,
        maxTries: t.settings.retries,
        priorityWeight: t.settings.priorityWeight,
        queue: t.settings.queue,
      }));
      if (await startQueuedRun(db, run.dag_id, run.run_id, specs)) {
        this.emit('run:state', { dagId: run.dag_id, runId: run.run_id, state: 'running' });
      }
    }
  }

  async #enqueue(): Promise<void> {
    const { executor } = this.#deps;
    const room = executor.openSlots - executor.queuedCount;
    if (room <= 0) return;
    const rows = await enqueueScheduled(this.#deps.database.db, Number.isFinite(room) ? room : null);
    for (const row of rows) {
      const key = { dagId: row.dag_id, runId: row.run_id, taskId: row.task_id };
      this.emit('ti:state', { key, state: 'queued', tryNumber: row.try_number });
      executor.queueWorkload({ key, priorityWeight: row.priority_weight, queuedAt: row.queued_at?.getTime() ?? Date.now(), tryNumber: row.try_number });
    }
  }

  async #reconcileExecutorEvents(): Promise<void> {
    this.#announceLost(await this.#lostTries.reconcileExecutorEvents());
  }

  #announceLost(lost: readonly LostTry[]): void {
    if (lost.length > 0) this.#runsMayFinish = true;
    for (const { key, state, tryNumber, reason } of lost) this.emit('ti:state', { key, state, tryNumber, error: reason });
  }

  #dag(dagId: string): Dag | undefined {
    const dag = this.#deps.dagBag.dags.get(dagId);
    if (!dag && !this.#warnedMissing.has(dagId)) {
      this.#warnedMissing.add(dagId);
      this.#log.warn({ dagId, folder: this.#deps.dagBag.folder }, 'a run exists for a DAG not in the DAG folder; its tasks wait');
    }
    return dag;
  }
}
