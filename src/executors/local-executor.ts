import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { TypedEmitter } from '../common/typed-emitter.ts';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import type { TaskStateChange } from '../runner/task-runner.ts';
import { BaseExecutor, type Workload } from './base-executor.ts';
import type { WorkerConfig } from './worker-protocol.ts';
import { WorkerProcess, type WorkerExit } from './worker-process.ts';

/** Worker processes starting at once, at most. */
const MAX_STARTING = 2;
/** A task that has waited this long for a free worker makes the pool grow. */
const GROW_AFTER_MS = 25;

/** The tsflow command: workers are forked through it so DAG files load exactly as in `tsflow tasks run`. */
export const TSFLOW_ENTRY = fileURLToPath(new URL('../../bin/tsflow.mjs', import.meta.url));

export interface LocalExecutorOptions {
  /** Most task instances running at once, hence most worker processes; 0 means unlimited. @default 32 */
  parallelism?: number;
  logger: Logger;
  worker: WorkerConfig;
  /** The script forked for each worker, given the argument `task-worker`. @default bin/tsflow.mjs */
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
  /** Task instances handed over but not yet on a worker. */
  readonly #waiting: Workload[] = [];
  #starting = 0;
  #growTimer: NodeJS.Timeout | undefined;
  #growNow = false;
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
    this.#waiting.push(workload);
    this.#assign();
  }

  /**
   * Hands waiting task instances to idle workers, and grows the pool while some still wait — at most
   * MAX_STARTING processes at a time. A task waits for the first worker to come free rather than
   * each one forking its own: a wave of queued tasks would otherwise start dozens of processes at
   * once and thrash the machine, while busy workers free up in milliseconds.
   */
  #assign(): void {
    if (this.#state === 'ended') return;
    while (this.#waiting.length > 0) {
      const worker = this.#takeIdle();
      if (!worker) break;
      this.#track(this.#runOn(worker, this.#waiting.shift() as Workload));
    }
    const limit = this.parallelism === 0 ? Number.POSITIVE_INFINITY : this.parallelism;
    const unserved = this.#waiting.length - this.#starting;
    if (unserved <= 0 || this.#starting >= MAX_STARTING || this.#workers.size + this.#starting >= limit) return;
    // Grow the pool only when a task has waited a moment without a worker coming free (at once
    // when there is none at all): short tasks are served by the workers there are, long ones lose
    // nothing, and a momentary queue does not start processes that cost a second of CPU each.
    if (this.#workers.size > 0 && !this.#growNow) {
      this.#growTimer ??= setTimeout(() => {
        this.#growTimer = undefined;
        this.#growNow = true;
        this.#assign();
        this.#growNow = false;
      }, GROW_AFTER_MS);
      return;
    }
    this.#starting++;
    this.#track(
      this.#spawn().then(
        (worker) => {
          this.#starting--;
          this.#release(worker);
        },
        (error: unknown) => {
          this.#starting--;
          // A worker that cannot start (bad DAG folder, database gone) fails the oldest waiting task, visibly.
          const workload = this.#waiting.shift();
          const info = error instanceof Error ? error.message : String(error);
          this.log.error({ err: error }, 'could not start a worker process');
          if (workload) this.changeState(workload.key, { key: workload.key, state: 'failed', info: `no worker process could start: ${info}` });
          this.#assign();
        },
      ),
    );
  }

  #track(job: Promise<void>): void {
    const tracked: Promise<void> = job.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  async #runOn(worker: WorkerProcess, workload: Workload): Promise<void> {
    const { key } = workload;
    let tryNumber: number | undefined;
    const onState = (change: TaskStateChange): void => {
      if (change.state === 'running') tryNumber = change.tryNumber;
      this.onTaskState(change);
    };
    try {
      const outcome = await worker.run(key, onState, workload.claim);
      if (outcome.kind === 'error' && outcome.stale) {
        this.#release(worker);
        this.changeState(key, { key, state: 'success', info: outcome.message, stale: true });
        return;
      }
      if (outcome.kind === 'error') {
        this.#release(worker);
        this.changeState(key, { key, state: 'failed', info: outcome.message, ...(tryNumber === undefined ? {} : { tryNumber }) });
        return;
      }
      if (outcome.result.interrupted) {
        // The task ignored its stop signal (a hung task past its executionTimeout): its code may still
        // run in that process, so the process goes, before the slot is given back.
        await worker.kill(`its task ${tiKeyString(key)} did not stop when told to (${outcome.result.error ?? 'interrupted'})`);
        this.#assign();
      } else {
        this.#release(worker);
      }
      this.changeState(key, { key, state: 'success', result: outcome.result });
    } catch (error) {
      const info = error instanceof Error ? error.message : String(error);
      this.log.error({ task: key, tryNumber, err: error }, 'task instance lost with its worker');
      this.changeState(key, { key, state: 'failed', info, ...(tryNumber === undefined ? {} : { tryNumber }) });
      this.#assign();
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
      // Its slot is free (a worker retiring after its task leaves while tasks may wait for a slot).
      if (this.#state === 'running') this.#assign();
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

  /** Back to the pool (and on to a waiting task) — or shut down, when the executor has nothing left to run. */
  #release(worker: WorkerProcess): void {
    if (worker.state !== 'idle') return this.#assign();
    if (this.#state === 'running' || this.#waiting.length > 0) {
      this.#idle.push(worker);
      this.#assign();
    } else {
      void worker.shutdown(this.#options.shutdownTimeoutMs);
    }
  }

  override async cancelTask(key: TaskInstanceKey, reason: string): Promise<boolean> {
    const id = tiKeyString(key);
    const waiting = this.#waiting.findIndex((w) => tiKeyString(w.key) === id);
    if (waiting >= 0) {
      this.#waiting.splice(waiting, 1);
      this.changeState(key, { key, state: 'failed', info: `cancelled before it started: ${reason}` });
      return true;
    }
    const worker = [...this.#workers].find((w) => w.currentKey !== undefined && tiKeyString(w.currentKey) === id);
    if (!worker) return false;
    await worker.kill(reason);
    return true;
  }

  /** Lets every task instance handed over finish (those waiting for a worker too), then shuts every worker down. */
  override end(): Promise<void> {
    this.#ending ??= (async () => {
      if (this.#state === 'ended') return;
      this.#state = 'ending';
      while (this.#waiting.length > 0 || this.#inFlight.size > 0) {
        this.#assign();
        if (this.#inFlight.size === 0) {
          // Nothing runs and nothing starts: the waiting tasks cannot be served; never spin on them.
          for (const workload of this.#waiting.splice(0)) {
            this.changeState(workload.key, { key: workload.key, state: 'failed', info: 'no worker process was available before the executor ended' });
          }
          break;
        }
        await Promise.allSettled([...this.#inFlight]);
      }
      this.#idle.length = 0;
      clearTimeout(this.#growTimer);
      await Promise.allSettled([...this.#workers].map((w) => w.shutdown(this.#options.shutdownTimeoutMs)));
      this.#state = 'ended';
    })();
    return this.#ending;
  }

  /**
   * Stops everything now: tasks still waiting for a worker are reported failed; each worker is sent
   * SIGTERM (its task is told to stop and the try recorded as failed or up for retry), and killed if
   * it has not exited after the shutdown timeout.
   */
  override terminate(): Promise<void> {
    const terminating = (async () => {
      if (this.#state === 'ended') return;
      this.#state = 'ending';
      for (const workload of this.#waiting.splice(0)) {
        this.changeState(workload.key, { key: workload.key, state: 'failed', info: 'the executor was terminated before the task started' });
      }
      this.#idle.length = 0;
      clearTimeout(this.#growTimer);
      await Promise.allSettled([...this.#workers].map((w) => w.terminate(this.#options.shutdownTimeoutMs, 'the executor was terminated')));
      await Promise.allSettled([...this.#inFlight]);
      this.#state = 'ended';
    })();
    this.#ending ??= terminating;
    return terminating;
  }
}
