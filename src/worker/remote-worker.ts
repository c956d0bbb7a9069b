import { EventEmitter } from 'node:events';
import { run, type Runner, type Task, type TaskList, type WorkerEvents } from 'graphile-worker';
import type { Logger } from 'pino';
import { Daemon, type DaemonState } from '../daemon/daemon.ts';
import type { Database } from '../db/database.ts';
import { assertGraphileSchemaCurrent, assertSchemaCurrent } from '../db/migrations.ts';
import { heartbeatJob } from '../db/jobs.ts';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import { describeWorker } from '../db/workers.ts';
import type { ExecutorEvent } from '../executors/base-executor.ts';
import type { LocalExecutor } from '../executors/local-executor.ts';
import { graphileLogger, GRAPHILE_SCHEMA } from '../graphile/graphile-schema.ts';
import { deleteLeftoverJobs, isTaskJobPayload, taskIdentifier } from '../graphile/task-jobs.ts';
import { compileRemoteWorkerOptions, type CompiledRemoteWorkerOptions, type RemoteWorkerOptions } from './remote-worker-options.ts';

export interface RemoteWorkerDeps {
  database: Database;
  /** The warm task processes the jobs run in (the LocalExecutor's pool); its parallelism should be the concurrency. */
  executor: LocalExecutor;
  logger: Logger;
  /** The host name the worker registers under. */
  hostname: string;
  pid?: number;
}

export interface RemoteWorkerEvents {
  /** A job whose try is no longer current was dropped without running anything. */
  'job:stale': { key: TaskInstanceKey; tryNumber: number };
  'task:done': { key: TaskInstanceKey; tryNumber: number; state: ExecutorEvent['state'] };
}

export type RemoteWorkerState = DaemonState;

/** A job locked this long ago whose handler is not running was left behind (see jobReleaseFailed); younger ones may be starting. */
const LEFTOVER_MIN_AGE_MS = 5000;

/**
 * `tsflow worker`: Airflow's Celery worker, on graphile-worker. It takes the jobs of its queues
 * only (its task list holds just their identifiers) up to `concurrency` at once, and runs each
 * job's task instance in a warm task process of a LocalExecutor pool, which records the try's
 * states itself. A job first claims its try — still queued for that try, else the job is stale and
 * completes having run nothing. It registers a `worker` job row (hostname, queues, concurrency) and
 * heartbeats it; a scheduler that finds the heartbeat too old retries its tries and releases its jobs.
 *
 * Stopping: graphile-worker takes no new job, running tasks get `shutdownTimeoutMs` to finish, then
 * their processes are told to stop (each try recorded failed or up for retry, saying why).
 */
export class RemoteWorker extends Daemon<RemoteWorkerEvents> {
  readonly #deps: RemoteWorkerDeps;
  readonly #options: CompiledRemoteWorkerOptions;
  /** Handlers waiting for their task's outcome, by task instance. */
  readonly #waiting = new Map<string, (event: ExecutorEvent) => void>();
  /** Each task instance's job being handled, by key: a second job of the same key waits for it. */
  readonly #handling = new Map<string, Promise<ExecutorEvent>>();
  #kicking: Promise<void> = Promise.resolve();
  #jobId: number | undefined;
  /** graphile-worker's ids for this worker (it locks jobs with them). */
  readonly #graphileIds: string[] = [];
  /** The graphile-worker jobs whose handler is running. */
  readonly #activeJobs = new Set<string>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(deps: RemoteWorkerDeps, options: RemoteWorkerOptions = {}) {
    super('worker', deps.logger);
    this.#deps = deps;
    this.#options = compileRemoteWorkerOptions(options);
  }

  get jobId(): number | undefined {
    return this.#jobId;
  }

  get options(): CompiledRemoteWorkerOptions {
    return this.#options;
  }

  protected override async onStart(): Promise<void> {
    const { database, executor, hostname } = this.#deps;
    const db = database.db;
    await assertSchemaCurrent(database);
    await assertGraphileSchemaCurrent(database);
    const { queues, concurrency } = this.#options;
    const jobId = await this.registerJob(db, { jobType: 'worker', hostname, pid: this.#deps.pid ?? process.pid, capacity: concurrency });
    this.#jobId = jobId;
    await describeWorker(db, jobId, queues, []);
    this.#heartbeat(jobId);

    executor.onChange = () => this.#kick();
    await executor.start();
    this.onStop('task processes', () => executor.end());

    const events = new EventEmitter() as WorkerEvents;
    const graphileIds = this.#graphileIds;
    // graphile-worker 0.18 locks jobs with its pool's id (older versions used each worker's id): record both.
    events.on('pool:create', ({ workerPool }) => graphileIds.push(workerPool.id));
    events.on('worker:create', ({ worker }) => graphileIds.push(worker.workerId));
    const handler: Task = async (payload, helpers) => {
      const jobId = String(helpers.job.id);
      this.#activeJobs.add(jobId);
      try {
        await this.#handle(payload);
      } finally {
        this.#activeJobs.delete(jobId);
      }
    };
    const taskList: TaskList = Object.fromEntries(queues.map((queue) => [taskIdentifier(queue), handler]));
    const runner = await run({
      connectionString: database.url,
      schema: GRAPHILE_SCHEMA,
      concurrency,
      // Each of its workers looks for and completes jobs on a connection of its own.
      maxPoolSize: concurrency + 2,
      pollInterval: this.#options.pollIntervalMs,
      noHandleSignals: true,
      logger: graphileLogger(this.log.child({ component: 'graphile-worker' })),
      events,
      taskList,
    });
    this.onStop('graphile-worker', () => this.#drain(runner));
    this.onStop('leftover jobs', () => clearTimeout(this.#sweep));
    // Recorded so that a scheduler finding this worker dead can unlock the jobs it held.
    await describeWorker(db, jobId, queues, graphileIds);
    this.log.info({ queues, concurrency, hostname }, 'worker started');
  }

  /**
   * Beats until the very end of the stop — unlike the other daemons', whose beat ends when stop
   * begins: a draining worker is alive, and a scheduler must not take its running tasks for lost.
   */
  #heartbeat(jobId: number): void {
    let beating = false;
    const timer = setInterval(() => {
      if (beating) return;
      beating = true;
      heartbeatJob(this.#deps.database.db, jobId)
        .catch((error: unknown) => this.log.warn({ err: error }, 'heartbeat failed'))
        .finally(() => (beating = false));
    }, this.#options.heartbeatIntervalMs);
    this.onStop('heartbeat', () => clearInterval(timer));
  }

  /**
   * graphile-worker could not mark a finished job done or failed (the server went away at that
   * moment; see src/graphile/job-release.ts). The try ran and recorded its outcome itself; the job is
   * left locked by this worker, and is deleted once the database answers again. (A job that was to be
   * marked failed goes too: its try is then found by the scheduler's zombie or queued-timeout checks.)
   */
  jobReleaseFailed(error: unknown): void {
    this.log.warn({ err: error }, 'graphile-worker could not mark a finished job done or failed; this worker deletes the job once the database answers');
    this.#sweepLeftovers();
  }

  #sweepLeftovers(): void {
    if (this.#sweep !== undefined || this.state === 'stopped') return;
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      deleteLeftoverJobs(this.#deps.database.db, this.#graphileIds, [...this.#activeJobs], LEFTOVER_MIN_AGE_MS).then(
        (deleted) => this.log.info({ deleted }, 'deleted the jobs graphile-worker could not mark done'),
        (error: unknown) => {
          this.log.warn({ err: error }, 'could not delete the jobs graphile-worker left locked; trying again');
          this.#sweepLeftovers();
        },
      );
    }, LEFTOVER_MIN_AGE_MS);
    this.#sweep.unref(); // a stopping worker does not wait for it
  }

  protected override afterStop(): void {
    this.log.info('worker stopped');
  }

  /**
   * graphile-worker's graceful shutdown: no new jobs, and it waits for running ones. Past the
   * shutdown timeout the task processes are terminated (each records its try as failed or up for
   * retry), which lets the remaining handlers return.
   */
  async #drain(runner: Runner): Promise<void> {
    const stopping = runner.stop('the worker is shutting down');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.#options.shutdownTimeoutMs)));
    const first = await Promise.race([stopping.then(() => 'stopped' as const), timedOut]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.log.warn({ running: this.#waiting.size, shutdownTimeoutMs: this.#options.shutdownTimeoutMs }, 'tasks still running at the shutdown timeout: stopping them for a retry');
      await this.#deps.executor.terminate();
    }
    await stopping;
  }

  async #handle(payload: unknown): Promise<void> {
    if (!isTaskJobPayload(payload)) {
      this.log.error({ payload }, 'a job with a payload tsflow did not write: dropped');
      return;
    }
    const key = { dagId: payload.dagId, runId: payload.runId, taskId: payload.taskId, ...(payload.mapIndex !== undefined && payload.mapIndex >= 0 && { mapIndex: payload.mapIndex }) };
    const { tryNumber } = payload;
    const id = tiKeyString(key);
    // A resume's job can arrive while this worker still finishes the part of the try that deferred
    // (its job was locked, so the resume got a job of its own): it waits for that part to end.
    for (let earlier = this.#handling.get(id); earlier; earlier = this.#handling.get(id)) await earlier.catch(() => undefined);
    const outcome = new Promise<ExecutorEvent>((resolve) => this.#waiting.set(id, resolve));
    this.#handling.set(id, outcome);
    try {
      // The task process claims the try in the write that starts it (startTry with a claim): no
      // round trip of its own before the task starts. A stale job — its try no longer queued — runs
      // nothing. That write is retried across a dropped connection or a restarting server.
      const accepted = this.#deps.executor.queueWorkload({
        key, priorityWeight: 0, queuedAt: Date.now(), tryNumber: tryNumber - 1, claim: { workerJobId: this.#jobId as number, tryNumber },
      });
      if (!accepted) {
        this.#waiting.delete(id);
        throw new Error(`this worker is already running ${id}`);
      }
      this.#kick();
      await outcome;
    } finally {
      if (this.#handling.get(id) === outcome) this.#handling.delete(id);
    }
    const event = await outcome;
    if (event.stale) {
      this.log.info({ task: id, tryNumber }, 'stale job (its try is no longer queued): dropped without running');
      this.emit('job:stale', { key, tryNumber });
      return;
    }
    this.emit('task:done', { key, tryNumber, state: event.state });
    // A task process that broke outside the task: the job fails, and the scheduler's executor
    // reports it so the try is retried or failed (fenced on the try) with this reason.
    if (event.state === 'failed') throw new Error(event.info ?? 'the task process failed');
  }

  /** Starts what the pool can take and hands finished tasks' outcomes to their handlers; one pass at a time. */
  #kick(): void {
    const { executor } = this.#deps;
    this.#kicking = this.#kicking
      .then(async () => {
        await executor.heartbeat();
        for (const event of executor.getEventBuffer()) {
          const id = tiKeyString(event.key);
          const resolve = this.#waiting.get(id);
          this.#waiting.delete(id);
          resolve?.(event);
        }
      })
      .catch((error: unknown) => this.log.error({ err: error }, 'could not hand a task to a task process'));
  }
}
