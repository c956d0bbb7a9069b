import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { TypedEmitter } from '../common/typed-emitter.ts';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import type { TaskStateChange } from '../runner/task-runner.ts';
import { BaseExecutor, type Workload } from './base-executor.ts';
import type { WorkerConfig } from './worker-protocol.ts';
import { WorkerProcess, type WorkerExit } from './worker-process.ts';

/** The tsflow command: workers are forked through it so DAG files load exactly as in `tsflow tasks run`. */
export const TSFLOW_ENTRY = fileURLToPath(new URL('../../bin/tsflow.mjs', import.meta.url));

export interface LocalExecutorOptions {
  /** Most task instances running at once, hence most worker processes; 0 means unlimited. @default 32 */
  parallelism?: number;
  logger: Logger;
  worker: WorkerConfig;
  /** The script forked for each worker, given the argument `worker`. @default bin/tsflow.mjs */
  entry?: string;
  /** How long a new worker may take to start and connect. @default 30000 */
  startTimeoutMs?: number;
  /** Past a task's executionTimeout, how long its worker gets to stop it before being killed. @default 5000 */
  timeoutGraceMs?: number;
  /** How long `end()` and `terminate()` wait for a worker to exit before killing it. @default 10000 */
  shutdownTimeoutMs?: number;
}

export interface LocalExecutorEvents {
  'worker:started': { pid: number };
  'worker:exited': WorkerExit;
}

export type LocalExecutorState = 'created' | 'running' | 'ending' | 'ended';

/** Announces worker lifecycle events (the executor itself extends BaseExecutor, not an emitter). */
class WorkerEvents extends TypedEmitter<LocalExecutorEvents> {
  override emit<K extends keyof LocalExecutorEvents & string>(event: K, payload: LocalExecutorEvents[K]): void {
    super.emit(event, payload);
  }
}

/**
 * Airflow's LocalExecutor: a pool of long-lived worker processes, started on demand up to
 * `parallelism`, each running one task instance at a time in isolation and reused for the next — so
 * a resumed deferred task does not pay a process start. A worker that crashes or is killed loses only
 * the task it held: the executor reports that workload `failed` (the scheduler then retries or fails
 * the try) and a new worker replaces it when next needed. A task that outlives its executionTimeout
 * gets its worker killed, and a worker whose task ignored a stop request is not reused.
 */
export class LocalExecutor extends BaseExecutor {
  readonly events = new WorkerEvents();
  readonly #options: Required<Omit<LocalExecutorOptions, 'parallelism' | 'logger' | 'worker'>> & { worker: WorkerConfig };
  readonly #workers = new Set<WorkerProcess>();
  readonly #idle: WorkerProcess[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #state: LocalExecutorState = 'created';
  #ending: Promise<void> | undefined;

  constructor(options: LocalExecutorOptions) {
    super({ parallelism: options.parallelism ?? 32, logger: options.logger });
    this.#options = {
      worker: options.worker,
      entry: options.entry ?? TSFLOW_ENTRY,
      startTimeoutMs: options.startTimeoutMs ?? 30_000,
      timeoutGraceMs: options.timeoutGraceMs ?? 5000,
      shutdownTimeoutMs: options.shutdownTimeoutMs ?? 10_000,
    };
  }

  get state(): LocalExecutorState {
    return this.#state;
  }

  /** The pids of the live worker processes. */
  get workerPids(): number[] {
    return [...this.#workers].map((w) => w.pid);
  }

  override async start(): Promise<void> {
    if (this.#state === 'created') this.#state = 'running';
  }

  protected override executeAsync(workload: Workload): void {
    if (this.#state !== 'running') throw new Error(`the LocalExecutor is ${this.#state}: it takes no new task instances`);
    // Not awaited: a worker start takes a moment, and the heartbeat should start every slot at once.
    const job: Promise<void> = this.#dispatch(workload).finally(() => this.#inFlight.delete(job));
    this.#inFlight.add(job);
  }

  async #dispatch(workload: Workload): Promise<void> {
    const { key } = workload;
    let tryNumber: number | undefined;
    const onState = (change: TaskStateChange): void => {
      if (change.state === 'running') tryNumber = change.tryNumber;
      this.onTaskState(change);
    };
    let worker: WorkerProcess | undefined;
    try {
      worker = this.#takeIdle() ?? (await this.#spawn());
      const outcome = await worker.run(key, onState);
      if (outcome.kind === 'error') {
        this.#release(worker);
        this.changeState(key, { key, state: 'failed', info: outcome.message, ...(tryNumber === undefined ? {} : { tryNumber }) });
        return;
      }
      if (outcome.result.interrupted) {
        // The task ignored its stop signal (a hung task past its executionTimeout): its code may still
        // run in that process, so the process goes, before the slot is given back.
        await worker.kill(`its task ${tiKeyString(key)} did not stop when told to (${outcome.result.error ?? 'interrupted'})`);
      } else {
        this.#release(worker);
      }
      this.changeState(key, { key, state: 'success', result: outcome.result });
    } catch (error) {
      const info = error instanceof Error ? error.message : String(error);
      this.log.error({ task: key, tryNumber, err: error }, 'task instance lost with its worker');
      this.changeState(key, { key, state: 'failed', info, ...(tryNumber === undefined ? {} : { tryNumber }) });
    }
  }

  async #spawn(): Promise<WorkerProcess> {
    const worker = await WorkerProcess.start({
      entry: this.#options.entry,
      config: this.#options.worker,
      logger: this.log,
      startTimeoutMs: this.#options.startTimeoutMs,
      timeoutGraceMs: this.#options.timeoutGraceMs,
    });
    this.#workers.add(worker);
    this.log.debug({ pid: worker.pid, workers: this.#workers.size }, 'worker process started');
    this.events.emit('worker:started', { pid: worker.pid });
    void worker.exited.then((exit) => {
      this.#workers.delete(worker);
      const idleAt = this.#idle.indexOf(worker);
      if (idleAt >= 0) this.#idle.splice(idleAt, 1);
      if (this.#state === 'running' && exit.reason === undefined) this.log.warn({ ...exit }, 'worker process exited unexpectedly; a new one starts when needed');
      this.events.emit('worker:exited', exit);
    });
    return worker;
  }

  /** An idle worker still alive (one may have exited since it was released: its removal is a tick late). */
  #takeIdle(): WorkerProcess | undefined {
    for (let worker = this.#idle.pop(); worker; worker = this.#idle.pop()) {
      if (worker.state === 'idle') return worker;
    }
    return undefined;
  }

  /** Back to the pool — or shut down, when the executor is ending. */
  #release(worker: WorkerProcess): void {
    if (worker.state !== 'idle') return;
    if (this.#state === 'running') this.#idle.push(worker);
    else void worker.shutdown(this.#options.shutdownTimeoutMs);
  }

  override async cancelTask(key: TaskInstanceKey, reason: string): Promise<boolean> {
    const id = tiKeyString(key);
    const worker = [...this.#workers].find((w) => w.currentKey !== undefined && tiKeyString(w.currentKey) === id);
    if (!worker) return false;
    await worker.kill(reason);
    return true;
  }

  /** Lets running task instances finish, then shuts every worker down. */
  override end(): Promise<void> {
    this.#ending ??= this.#end(async () => {
      await Promise.allSettled([...this.#inFlight]);
      await Promise.allSettled([...this.#workers].map((w) => w.shutdown(this.#options.shutdownTimeoutMs)));
    });
    return this.#ending;
  }

  /**
   * Stops everything now: each worker is sent SIGTERM (its task is told to stop and the try recorded
   * as failed or up for retry), and killed if it has not exited after the shutdown timeout.
   */
  override terminate(): Promise<void> {
    const terminating = this.#end(async () => {
      await Promise.allSettled([...this.#workers].map((w) => w.terminate(this.#options.shutdownTimeoutMs, 'the executor was terminated')));
      await Promise.allSettled([...this.#inFlight]);
    });
    this.#ending ??= terminating;
    return terminating;
  }

  async #end(stopWorkers: () => Promise<void>): Promise<void> {
    if (this.#state === 'ended') return;
    this.#state = 'ending';
    this.#idle.length = 0;
    await stopWorkers();
    this.#state = 'ended';
  }
}
