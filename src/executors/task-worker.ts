import os from 'node:os';
import { createLogger, type Logger } from '../common/logger.ts';
import { withTimeout } from '../common/sleep.ts';
import { fileStamp, loadDagVersion } from '../dag-bag/load-dag.ts';
import { openDatabase, type Database } from '../db/database.ts';
import { withRetry } from '../db/retry.ts';
import type { TaskInstanceKey } from '../db/schema.ts';
import { StaleTryError, type TryClaim } from '../db/task-instances.ts';
import { OutcomeNotRecordedError, runTaskInstance } from '../runner/task-runner.ts';
import type { Dag } from '../sdk/dag.ts';
import { installKeyText } from '../secrets/process-keyring.ts';
import type { FromWorker, ToWorker, WorkerConfig } from './worker-protocol.ts';

interface CachedDag {
  readonly dag: Dag;
  /** The file's stamp when it was imported. */
  readonly stamp: string | undefined;
}

export type TaskWorkerState = 'created' | 'ready' | 'busy' | 'stopping' | 'stopped';

/** How long a worker told to stop waits for its task to record the interruption before it exits anyway. */
const ABANDON_GRACE_MS = 10_000;

/**
 * The inside of a LocalExecutor worker process: on `init` it opens its database pool; on `run` it runs
 * one task instance with the task runner, reporting each committed state to the executor; on
 * `shutdown` it closes up. DAGs are loaded once per worker and reused. The process wiring (IPC,
 * signals, exit) belongs to the `tsflow task-worker` command; this class only sees messages.
 */
export class TaskWorker {
  readonly #send: (message: FromWorker) => void;
  readonly #dags = new Map<string, Promise<CachedDag>>();
  readonly #stopped: Promise<void>;
  #markStopped: () => void = () => undefined;
  #state: TaskWorkerState = 'created';
  #config: WorkerConfig | undefined;
  #database: Database | undefined;
  #log: Logger | undefined;
  #current: { abort: AbortController; done: Promise<void> } | undefined;
  /** A DAG file changed that this process cannot re-import: it exits after the task it runs. */
  #recycle = false;
  /** DAGs whose last load failed: the next one imports their file afresh. */
  readonly #failedLoads = new Set<string>();

  constructor(send: (message: FromWorker) => void) {
    this.#send = send;
    this.#stopped = new Promise((resolve) => (this.#markStopped = resolve));
  }

  get state(): TaskWorkerState {
    return this.#state;
  }

  /** Settles when the worker has closed its connections. */
  get stopped(): Promise<void> {
    return this.#stopped;
  }

  handle(message: ToWorker): void {
    switch (message.type) {
      case 'init':
        void this.#init(message.config);
        return;
      case 'run':
        this.#startRun(message.key, message.claim);
        return;
      case 'shutdown':
        void this.stop('shutdown requested');
        return;
    }
  }

  /**
   * Tells the running task to stop (its try is recorded as failed or up for retry, like any error),
   * waits a bounded time for that, and closes up. For a lost executor or a SIGTERM. A record that
   * meets a dropped connection is not retried once told to stop: that try stays `running` for the
   * scheduler's lost-try handling.
   */
  async stop(reason: string): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') return this.#stopped;
    this.#state = 'stopping';
    const current = this.#current;
    if (current) {
      this.#log?.warn({ reason }, 'stopping the running task');
      current.abort.abort(new Error(`the worker was stopped: ${reason}`));
      const waited = await withTimeout(current.done, ABANDON_GRACE_MS);
      if (waited.timedOut) this.#log?.error('the task did not record its interruption in time; exiting anyway');
    }
    await this.#database?.close().catch(() => undefined);
    this.#state = 'stopped';
    this.#markStopped();
    return this.#stopped;
  }

  async #init(config: WorkerConfig): Promise<void> {
    if (this.#state !== 'created') return;
    try {
      this.#config = config;
      if (config.secretKeys !== undefined) installKeyText(config.secretKeys, 'the secret keys given to this worker');
      this.#log = createLogger(config.logLevel).child({ component: 'worker' });
      // One connection stays open while the process waits for its next task: without it, a task
      // after 10 s of quiet would start by opening one (tens of ms before its try is `running`).
      this.#database = openDatabase({ url: config.databaseUrl, poolSize: 3, keepOpen: 1, applicationName: 'tsflow-worker' });
      const database = this.#database;
      // A server restarting (or a dropped connection) while the worker starts is waited out, within
      // the executor's start timeout, rather than failing the task it was started for.
      await withRetry(() => database.pool.query('SELECT 1'), { maxAttempts: 12, capMs: 2000 });
      this.#state = 'ready';
      this.#send({ type: 'ready' });
    } catch (error) {
      this.#send({ type: 'init-failed', message: error instanceof Error ? error.message : String(error) });
      await this.stop('it could not start');
    }
  }

  #startRun(key: TaskInstanceKey, claim: TryClaim | undefined): void {
    if (this.#state !== 'ready') {
      this.#send({ type: 'error', message: `the worker is ${this.#state}, not ready for a task` });
      return;
    }
    this.#state = 'busy';
    const abort = new AbortController();
    const done = this.#run(key, abort.signal, claim).finally(() => {
      this.#current = undefined;
      if (this.#state === 'busy') this.#state = 'ready';
    });
    this.#current = { abort, done };
  }

  async #run(key: TaskInstanceKey, signal: AbortSignal, claim: TryClaim | undefined): Promise<void> {
    const config = this.#config as WorkerConfig;
    const database = this.#database as Database;
    const log = this.#log as Logger;
    try {
      const dag = await this.#dag(database, config, key.dagId, signal);
      const result = await runTaskInstance(
        {
          db: database.db,
          logger: log,
          hostname: config.hostname ?? os.hostname(),
          pid: process.pid,
          defaults: { deferrable: config.defaultDeferrable },
          logsFolder: config.logsFolder,
          heartbeatIntervalMs: config.heartbeatIntervalMs,
          onState: (change) => this.#send({ type: 'state', change }),
        },
        dag,
        key,
        { signal, claim },
      );
      this.#send({ type: 'done', result, ...(this.#recycle ? { retire: true } : {}) });
      if (this.#recycle) void this.stop('a DAG file it had imported changed and cannot be re-imported (CommonJS)');
    } catch (error) {
      if (error instanceof StaleTryError) {
        this.#send({ type: 'error', message: error.message, stale: true });
        return;
      }
      // The runner has already said why it could not record the outcome, in this log and the task's.
      if (!(error instanceof OutcomeNotRecordedError)) log.error({ err: error, task: key }, 'task run failed outside the task');
      this.#send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    }
  }

  /**
   * A DAG loads once per worker and is reused while its file is unchanged (same mtime, size and
   * inode); when the file changed, it is imported afresh, so a task runs the code its file holds now.
   * A failed load is retried next time. Looking up its file meets the database: a dropped connection
   * there is retried (the try has not started, so failing it would cost a try for nothing); a DAG
   * file that throws is not.
   */
  async #dag(database: Database, config: WorkerConfig, dagId: string, signal: AbortSignal): Promise<Dag> {
    const cached = await this.#dags.get(dagId)?.catch(() => undefined);
    if (cached && (await fileStamp(cached.dag.fileloc)) === cached.stamp) return cached.dag;
    const loading = (async (): Promise<CachedDag> => {
      // The stamp is read before the import: a change made while importing is seen next time.
      const stamp = cached ? await fileStamp(cached.dag.fileloc) : undefined;
      // After a change, or after a load that failed (Node caches a module whose evaluation threw),
      // the file is imported under a new URL.
      const fresh = cached !== undefined || this.#failedLoads.has(dagId);
      const loaded = await withRetry(() => loadDagVersion(database.db, config.dagsFolder, dagId, fresh ? stamp ?? String(Date.now()) : undefined), {
        maxAttempts: 30,
        capMs: 2000,
        signal,
      });
      if (loaded.stale) {
        this.#log?.warn({ dagId, file: loaded.dag.fileloc }, 'the DAG file changed, but it loads as CommonJS and cannot be re-imported in a running worker: this task runs the version imported before, and this worker exits after it');
        this.#recycle = true;
      }
      return { dag: loaded.dag, stamp: stamp ?? (await fileStamp(loaded.dag.fileloc)) };
    })();
    loading.then(
      () => this.#failedLoads.delete(dagId),
      () => {
        this.#dags.delete(dagId);
        this.#failedLoads.add(dagId);
      },
    );
    this.#dags.set(dagId, loading);
    return (await loading).dag;
  }
}
