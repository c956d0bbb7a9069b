import os from 'node:os';
import type { Logger } from 'pino';
import { Wakeup } from '../common/wakeup.ts';
import { Daemon, type DaemonState } from '../daemon/daemon.ts';
import { DateTime } from 'luxon';
import type { DagBag } from '../dag-bag/dag-bag.ts';
import { serializeDag, type DagSpec } from '../dag-bag/serialized-dag.ts';
import type { Database } from '../db/database.ts';
import { assertSchemaCurrent } from '../db/migrations.ts';
import type { Notifier } from '../db/notifier.ts';
import { CANNOT_FINISH_A_RUN, Channels } from '../db/protocol.ts';
import type { LostTry } from '../db/lost-tries.ts';
import { rowKey, type DagRunState, type TaskInstanceKey, type TaskInstanceState } from '../db/schema.ts';
import { builtInPlanner, createDueRuns, msUntilNextDagrun, refreshStalledDags, type RunPlanner } from '../db/next-dagrun.ts';
import { failTimedOutRuns, msUntilNextRunTimeout } from '../db/run-timeouts.ts';
import { type DagLeaves, enqueueScheduled, finishCompletedRuns, type PoolWait, listStartableRuns, requeueOrphanedQueued, scheduleDueRetries, startQueuedRun } from '../db/scheduling.ts';
import { recordDags } from '../db/serialized-dags.ts';
import { msUntilNextDue } from '../db/task-instances.ts';
import { deleteUnusedTriggers } from '../db/triggers.ts';
import type { BaseExecutor } from '../executors/base-executor.ts';
import { TimeoutSweeper } from '../daemon/timeout-sweeper.ts';
import { evaluateDependencies } from './dependency-evaluator.ts';
import { taskInstanceSpecs } from './task-mapping.ts';
import { LostTryHandler } from './lost-try-handler.ts';
import { compileSchedulerOptions, type CompiledSchedulerOptions, type SchedulerOptions } from './scheduler-options.ts';
import { DagCache } from './dag-cache.ts';
import { InProcessStartTriggerBuilder, StartFromTrigger, type StartTriggerBuilder } from './start-from-trigger.ts';

export type { SchedulerOptions } from './scheduler-options.ts';

export interface SchedulerDeps {
  database: Database;
  /**
   * DAGs defined in this process (tests, embedding tsflow): recorded in the database at start, as a
   * DAG processor would, and used to build `startFromTrigger` triggers. Without it the scheduler
   * works only from the serialized DAGs a DAG processor wrote.
   */
  dagBag?: DagBag;
  /** Builds `startFromTrigger` sensors' triggers from their code (a child process in `tsflow scheduler`). */
  startTriggerBuilder?: StartTriggerBuilder;
  /**
   * A scheduler for these DAGs' runs only (`tsflow dags test`): it creates no scheduled runs, starts
   * and enqueues only these DAGs' runs and tasks, and starts their runs even when paused or at their
   * limit. The rest of the database's work is left to the deployment's schedulers.
   */
  only?: { readonly dagIds: readonly string[] };
  executor: BaseExecutor;
  logger: Logger;
  notifier?: Notifier;
}

export interface SchedulerEvents {
  'ti:state': { key: TaskInstanceKey; state: TaskInstanceState; tryNumber?: number; error?: string };
  'run:state': { dagId: string; runId: string; state: DagRunState };
  /** A scheduled run was created; `latenessMs` is its creation (database clock) minus the moment it became due. */
  'run:created': { dagId: string; runId: string; latenessMs: number };
}


export type SchedulerState = DaemonState;

/**
 * The scheduler loop: starts queued runs, moves task instances whose upstreams are done to
 * `scheduled`, brings back due retries and reschedules, enqueues scheduled work into the executor
 * (FOR UPDATE SKIP LOCKED, so several schedulers can run), reconciles what the executor reports and
 * finishes runs. It sleeps until the next due time and wakes on NOTIFY. The `queued` task instances
 * of a scheduler that died go back to `scheduled` once its heartbeat is past the health threshold.
 */
export class Scheduler extends Daemon<SchedulerEvents> {
  readonly #deps: SchedulerDeps;
  readonly #options: CompiledSchedulerOptions;
  readonly #wakeup = new Wakeup();
  readonly #sweeper: TimeoutSweeper;
  readonly #lostTries: LostTryHandler;
  readonly #warnedMissing = new Set<string>();
  /** Pool problems already logged (a missing pool, one too small for a task), so each warns once. */
  readonly #warnedPools = new Set<string>();
  readonly #startFromTrigger: StartFromTrigger | undefined;
  readonly #dags: DagCache;
  /** Built-in timetables are evaluated here; a custom one by the DAG's code, through the builder. */
  readonly #planner: RunPlanner;
  #nextDagrunDue = true;
  #runsMayFinish = true;
  #deadCheckDue = true;
  #jobId: number | undefined;
  #lastCleanup = 0;
  #lastZombieCheck = 0;

  constructor(deps: SchedulerDeps, options: SchedulerOptions = {}) {
    super('scheduler', deps.logger);
    this.#deps = deps;
    this.#options = compileSchedulerOptions(options);
    this.#lostTries = new LostTryHandler({
      db: deps.database.db,
      executor: deps.executor,
      dagOf: (dagId) => this.#dags.get(dagId),
      logger: this.log,
      zombieThresholdMs: this.#options.zombieThresholdMs,
      queuedTimeoutMs: this.#options.queuedTimeoutMs,
    });
    this.#sweeper = new TimeoutSweeper({ db: deps.database.db, logger: this.log, pollIntervalMs: this.#options.pollIntervalMs });
    this.#sweeper.on('timed-out', (keys) => {
      for (const key of keys) this.emit('ti:state', { key, state: 'scheduled' });
      this.#wakeup.nudge();
    });
    this.#dags = new DagCache(deps.database.db, this.log, this.#options.pollIntervalMs);
    const builder = deps.startTriggerBuilder ?? (deps.dagBag ? new InProcessStartTriggerBuilder(deps.dagBag) : undefined);
    this.#planner = async (spec, last, restriction, now) => {
      if (spec.timetable || !spec.scheduled) return builtInPlanner(spec, last, restriction, now);
      if (!builder?.nextRun) throw new Error(`DAG '${spec.dagId}' has a custom timetable and this scheduler has no DAG code host to evaluate it`);
      const iso = (d: DateTime | undefined): string | null => (d ? (d.toUTC().toISO() as string) : null);
      const planned = await builder.nextRun({
        dagId: spec.dagId,
        fileloc: spec.data.fileloc,
        last: last ? { start: iso(last.start) as string, end: iso(last.end) as string } : null,
        restriction: { earliest: iso(restriction.earliest), latest: iso(restriction.latest), catchup: restriction.catchup },
        now: iso(now) as string,
      });
      if (!planned) return undefined;
      const utc = (value: string): DateTime => DateTime.fromISO(value, { zone: 'utc' });
      return { runAfter: utc(planned.runAfter), dataInterval: { start: utc(planned.start), end: utc(planned.end) }, logicalDate: utc(planned.start) };
    };
    const mine = (spec: DagSpec): boolean => deps.only === undefined || deps.only.dagIds.includes(spec.dagId);
    this.#startFromTrigger =
      builder && new StartFromTrigger({ db: deps.database.db, dags: () => [...this.#dags.values()].filter(mine), builder, logger: this.log });
    deps.executor.onChange = () => {
      this.#runsMayFinish = true;
      this.#wakeup.nudge();
    };
    deps.executor.onTaskState = (change) => this.emit('ti:state', change);
  }

  get jobId(): number | undefined {
    return this.#jobId;
  }

  nudge(): void {
    this.#wakeup.nudge();
  }

  /*
   * Start-up, in order; stop() undoes it in reverse: the loop ends, the sweeper stops, notifications
   * are ignored, the executor lets its running tasks finish (`end`), what they did is recorded (their
   * runs finished), and last the heartbeat stops and the job row is ended.
   */
  protected override async onStart(): Promise<void> {
    const { database, notifier, executor } = this.#deps;
    const db = database.db;
    await assertSchemaCurrent(database);
    if (this.#deps.dagBag) {
      const dags = [...this.#deps.dagBag.dags.values()].map((dag) => serializeDag(dag, dag.fileloc ?? ''));
      await recordDags(db, dags);
    }
    const jobId = await this.registerJob(db, { jobType: 'scheduler', hostname: os.hostname(), pid: process.pid });
    this.#jobId = jobId;
    this.startHeartbeat(db, jobId, this.#options.heartbeatIntervalMs, () => {
      this.#deadCheckDue = true; // each beat is also the moment to look for dead schedulers' queues
      this.#wakeup.nudge();
    });
    this.onStop('record the last tasks', async () => {
      await this.#reconcileExecutorEvents();
      await this.#pass(); // record what the last tasks did (finish their runs)
    });
    await executor.start();
    this.onStop('executor', () => executor.end());
    this.subscribe(notifier, {
      notification: ({ channel, payload }) => {
        if (channel === Channels.ti) {
          if (!CANNOT_FINISH_A_RUN.has(payload)) this.#runsMayFinish = true;
          this.#wakeup.nudge();
        }
        if (channel === Channels.trigger && payload === 'new') this.#sweeper.nudge();
        if (channel === Channels.dag) {
          this.#dags.invalidate();
          this.#nextDagrunDue = true;
          this.#wakeup.nudge();
        }
      },
      reconnected: () => {
        this.#dags.invalidate();
        this.#nextDagrunDue = true;
        this.#runsMayFinish = true;
        this.#wakeup.nudge();
        this.#sweeper.nudge();
      },
    });
    this.#sweeper.start();
    this.onStop('sweeper', () => this.#sweeper.stop());
    this.runLoop('scheduler', this.#wakeup, (nudged) => this.#loopPass(nudged));
    this.log.info({ executor: executor.constructor.name, parallelism: executor.parallelism }, 'scheduler started');
  }

  protected override afterStop(): void {
    this.log.info('scheduler stopped');
  }

  /** One iteration of the loop; returns how long to sleep before the next. */
  async #loopPass(nudged: boolean): Promise<number> {
    if (!nudged) {
      this.#runsMayFinish = true; // the safety-net poll checks everything
      this.#nextDagrunDue = true;
    }
    await this.#pass();
    await this.#deps.executor.heartbeat();
    await this.#reconcileExecutorEvents();
    // Trigger timeouts are the sweeper's (it nudges this loop when some fire): only retries, the
    // next scheduled run and the next run timeout here.
    const { db } = this.#deps.database;
    let waitMs = this.#options.pollIntervalMs;
    const dues = [await msUntilNextDue(db, 'retries'), await msUntilNextDagrun(db)];
    if (this.#dags.anyRunTimeout) dues.push(await msUntilNextRunTimeout(db));
    for (const dueInMs of dues) if (dueInMs !== null) waitMs = Math.min(waitMs, Math.max(0, dueInMs));
    if (dues[1] !== null && (dues[1] as number) <= waitMs) this.#nextDagrunDue = true;
    return Math.min(waitMs, Math.max(10, this.#lastZombieCheck + this.#options.zombieCheckIntervalMs - Date.now()));
  }

  async #pass(): Promise<void> {
    await this.#dags.refreshIfNeeded();
    if (this.state === 'running' && this.#nextDagrunDue && !this.#deps.only) {
      this.#nextDagrunDue = false;
      await this.#createDueRuns();
    }
    if (this.state === 'running' && this.#dags.anyRunTimeout) await this.#failTimedOutRuns();
    await this.#startQueuedRuns();
    if (this.state === 'running' && this.#deadCheckDue) {
      this.#deadCheckDue = false;
      await this.#requeueOrphans();
    }
    if (this.state === 'running' && Date.now() - this.#lastZombieCheck >= this.#options.zombieCheckIntervalMs) {
      this.#lastZombieCheck = Date.now();
      // A try's heartbeat is stale after a database outage too: judged only once this scheduler's
      // own heartbeat has landed for the zombie threshold (at most the health threshold), time
      // enough for live task processes to land theirs.
      const settled = Math.min(this.#options.zombieThresholdMs, this.#options.healthCheckThresholdMs);
      if (this.heartbeatStreakMs >= settled) this.#announceLost(await this.#lostTries.failZombies());
      this.#announceLost(await this.#lostTries.failStuckQueued());
    }
    for (const key of await scheduleDueRetries(this.#deps.database.db)) this.emit('ti:state', { key, state: 'scheduled' });
    for (const change of await evaluateDependencies(this.#deps.database.db, (dagId) => this.#dag(dagId))) {
      if (change.state !== 'scheduled') this.#runsMayFinish = true;
      this.emit('ti:state', change);
    }
    // startFromTrigger sensors: scheduled → deferred here, before anything is enqueued.
    if (this.#startFromTrigger) {
      for (const { key, tryNumber } of await this.#startFromTrigger.run()) this.emit('ti:state', { key, state: 'deferred', tryNumber });
    }
    if (this.state === 'running') await this.#enqueue();
    // A run can only finish when a task instance reached a final state: look only then (or on a
    // poll), not on every notification of a burst of resumes.
    if (this.#runsMayFinish) {
      this.#runsMayFinish = false;
      const finished = await finishCompletedRuns(this.#deps.database.db, this.#dagLeaves());
      for (const run of finished) {
        this.log.info(run, 'run finished');
        this.emit('run:state', run);
      }
      await this.#afterRunsEnded(finished.map((r) => r.dagId));
    }
    if (Date.now() - this.#lastCleanup > this.#options.pollIntervalMs) {
      // Triggers whose task left deferred with no triggerer running to notice (Airflow #34906).
      this.#lastCleanup = Date.now();
      await deleteUnusedTriggers(this.#deps.database.db);
    }
  }

  /** Creates every scheduled run that is due (Airflow's data-interval semantics; see src/db/next-dagrun.ts). */
  async #createDueRuns(): Promise<void> {
    const created = await createDueRuns(this.#deps.database.db, (dagId) => this.#dags.get(dagId), {
      planner: this.#planner,
      onPlanError: (dagId, error) => this.log.error({ dagId, err: error }, 'the DAG\'s custom timetable failed; trying again in a minute'),
    });
    const now = Date.now();
    for (const run of created) {
      this.log.info({ dagId: run.dagId, runId: run.runId }, 'scheduled run created');
      this.emit('run:created', { dagId: run.dagId, runId: run.runId, latenessMs: now - run.runAfter.getTime() });
    }
    if (created.length > 0) this.#nextDagrunDue = true; // catchup may have more; the next pass looks
  }

  /** Fails runs past their DAG's `dagrunTimeout` and stops their unfinished tasks. */
  async #failTimedOutRuns(): Promise<void> {
    const runs = await failTimedOutRuns(this.#deps.database.db);
    for (const run of runs) {
      this.log.warn({ dagId: run.dagId, runId: run.runId, stoppedTasks: run.stopped }, 'run exceeded its dagrunTimeout: failed');
      this.emit('run:state', { dagId: run.dagId, runId: run.runId, state: 'failed' });
    }
    await this.#afterRunsEnded(runs.map((r) => r.dagId));
  }

  /** A DAG that stopped creating runs at its maxActiveRuns may create again once one of its runs ended. */
  async #afterRunsEnded(dagIds: readonly string[]): Promise<void> {
    if (dagIds.length === 0) return;
    await refreshStalledDags(this.#deps.database.db, dagIds, (dagId) => this.#dags.get(dagId), DateTime.utc());
    this.#nextDagrunDue = true;
  }

  /** Queued task instances no executor will start (their scheduler died, or an enqueue's reply was lost) go back to scheduled. */
  async #requeueOrphans(): Promise<void> {
    await this.#reconcileExecutorEvents(); // a workload that failed to start is the reconciliation's, not an orphan
    const { db } = this.#deps.database;
    const { executor } = this.#deps;
    // Peers (schedulers, workers) are judged dead only once this scheduler's own heartbeat has
    // landed for a whole threshold: after a database outage every heartbeat is stale.
    if (this.heartbeatStreakMs < this.#options.healthCheckThresholdMs) return;
    this.#announceLost(await this.#lostTries.failDeadWorkers(this.#options.healthCheckThresholdMs));
    // Adopted first (graphile: their job is still in the broker), so that the requeue below — which
    // spares what the executor holds — does not give them a second job.
    const adopted = await executor.tryAdoptTaskInstances(db, this.#jobId as number, this.#options.healthCheckThresholdMs);
    if (adopted.length > 0) this.log.warn({ taskInstances: adopted.length }, 'adopted the queued task instances of a dead scheduler');
    const keys = await requeueOrphanedQueued(db, this.#jobId as number, this.#options.healthCheckThresholdMs, executor.heldKeys());
    if (keys.length === 0) return;
    this.log.warn({ taskInstances: keys.length }, 'queued task instances that no executor will start (their scheduler is dead) go back to scheduled');
    for (const key of keys) this.emit('ti:state', { key, state: 'scheduled' });
  }

  async #startQueuedRuns(): Promise<void> {
    const { db } = this.#deps.database;
    const { only } = this.#deps;
    for (const run of await listStartableRuns(db, { dagIds: only?.dagIds, ignoreLimits: only !== undefined })) {
      const dag = this.#dag(run.dag_id);
      if (!dag) continue;
      const specs = taskInstanceSpecs(dag);
      if (await startQueuedRun(db, run.dag_id, run.run_id, specs, { checkLimits: only === undefined })) {
        this.emit('run:state', { dagId: run.dag_id, runId: run.run_id, state: 'running' });
      }
    }
  }

  async #enqueue(): Promise<void> {
    const { executor } = this.#deps;
    const room = executor.openSlots - executor.queuedCount;
    if (room <= 0) return;
    const limit = Number.isFinite(room) ? room : null;
    const rows = await enqueueScheduled(
      this.#deps.database.db,
      this.#jobId as number,
      limit,
      this.#deps.only?.dagIds,
      (wait) => this.#warnPoolWait(wait),
      executor.onEnqueued,
    );
    for (const row of rows) {
      const key = rowKey(row);
      this.emit('ti:state', { key, state: 'queued', tryNumber: row.try_number });
      const queuedAt = row.queued_at?.getTime() ?? Date.now();
      executor.queueWorkload({ key, priorityWeight: row.priority_weight, queuedAt, tryNumber: row.try_number, resuming: row.next_method !== null });
    }
  }

  async #reconcileExecutorEvents(): Promise<void> {
    this.#announceLost(await this.#lostTries.reconcileExecutorEvents());
  }

  #announceLost(lost: readonly LostTry[]): void {
    if (lost.length > 0) this.#runsMayFinish = true;
    for (const { key, state, tryNumber, reason } of lost) this.emit('ti:state', { key, state, tryNumber, error: reason });
  }

  #warnPoolWait(wait: PoolWait): void {
    const key = wait.kind === 'missing' ? `missing\0${wait.pool}` : `too-small\0${wait.pool}\0${wait.slots}\0${wait.poolSlots}`;
    if (this.#warnedPools.has(key)) return;
    this.#warnedPools.add(key);
    if (wait.kind === 'missing') {
      this.log.warn({ pool: wait.pool }, 'tasks name a pool that does not exist; they are not queued until it is created (tsflow pools set)');
    } else {
      this.log.warn(wait, 'tasks need more slots than their pool has in all; they are not queued until the pool grows');
    }
  }

  #dagLeaves(): DagLeaves[] {
    return [...this.#dags.values()].map((spec) => ({ dagId: spec.dagId, leafTaskIds: spec.leafTaskIds }));
  }

  #dag(dagId: string): DagSpec | undefined {
    const dag = this.#dags.get(dagId);
    if (!dag && !this.#warnedMissing.has(dagId)) {
      this.#warnedMissing.add(dagId);
      this.log.warn({ dagId }, 'a run exists for a DAG no DAG processor has recorded (or its serialized form is unusable); its tasks wait');
    }
    return dag;
  }
}
