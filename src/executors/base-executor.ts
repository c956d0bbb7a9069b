import type { Logger } from 'pino';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import type { Db } from '../db/database.ts';
import type { TryClaim } from '../db/task-instances.ts';
import type { OnEnqueued } from '../db/scheduling.ts';
import type { TaskRunResult, TaskStateChange } from '../runner/task-runner.ts';

/** One task instance to run, as the scheduler hands it over. */
export interface Workload {
  readonly key: TaskInstanceKey;
  readonly priorityWeight: number;
  /** Epoch ms when it was queued: older first among equal priorities. */
  readonly queuedAt: number;
  readonly tryNumber: number;
  /** It resumes a deferred try (same try number) rather than starting the next one. */
  readonly resuming?: boolean;
  /** A `tsflow worker`'s job: the try starts only if still queued for it (see TryClaim). */
  readonly claim?: TryClaim | undefined;
}

/** What the executor reports about a workload it finished. `failed` means the run itself broke. */
export interface ExecutorEvent {
  readonly key: TaskInstanceKey;
  readonly state: 'success' | 'failed';
  readonly info?: string;
  readonly result?: TaskRunResult;
  /**
   * The try the workload reported `running`, if it got that far. Reconciling a `failed` event fences
   * on it: only that try, still running, is failed — never a try someone else started since.
   */
  readonly tryNumber?: number;
  /** The workload's claim found its try no longer queued: nothing ran (state `success`: nothing broke). */
  readonly stale?: boolean;
}

/** A task instance withdrawn from its executor before anything started it, and why nothing did. */
export interface RevokedWorkload {
  readonly key: TaskInstanceKey;
  /** Why it was never started, for the task instance's error (e.g. no worker serves its queue). */
  readonly reason: string;
}

/** Runs a task instance and reports the states it commits; supplied by whoever builds the executor. */
export type RunTask = (key: TaskInstanceKey, signal: AbortSignal, onState: (change: TaskStateChange) => void) => Promise<TaskRunResult>;

export interface BaseExecutorOptions {
  /** Most workloads running at once; 0 means unlimited. */
  parallelism: number;
  logger: Logger;
}

/**
 * Airflow's executor contract: `queueWorkload` adds to `queued` (refusing a key already queued or
 * running), `heartbeat()` starts as many queued workloads as there are open slots — highest priority,
 * then oldest, first — and then `sync()`s; finished workloads land in the event buffer, which the
 * scheduler drains with `getEventBuffer()` and reconciles with the database.
 */
export abstract class BaseExecutor {
  readonly parallelism: number;
  protected readonly log: Logger;
  readonly #queued = new Map<string, Workload>();
  readonly #running = new Map<string, Workload>();
  #events: ExecutorEvent[] = [];
  /** Called when something finishes or changes state, so the scheduler looks again. */
  onChange: () => void = () => undefined;
  /** Told each state a task commits while this executor runs it. */
  onTaskState: (change: TaskStateChange) => void = () => undefined;

  constructor(options: BaseExecutorOptions) {
    if (!Number.isInteger(options.parallelism) || options.parallelism < 0) {
      throw new RangeError(`executor parallelism must be a whole number ≥ 0, got ${options.parallelism}`);
    }
    this.parallelism = options.parallelism;
    this.log = options.logger.child({ component: 'executor', executor: this.constructor.name });
  }

  queueWorkload(workload: Workload): boolean {
    const id = tiKeyString(workload.key);
    if (this.#queued.has(id) || this.#running.has(id)) {
      this.log.warn({ task: id }, 'could not queue task instance: it is already queued or running');
      return false;
    }
    this.#queued.set(id, workload);
    return true;
  }

  /** Free slots: parallelism minus running (unlimited when parallelism is 0). */
  get openSlots(): number {
    return this.parallelism === 0 ? Number.POSITIVE_INFINITY : Math.max(0, this.parallelism - this.#running.size);
  }

  get queuedCount(): number {
    return this.#queued.size;
  }

  get runningCount(): number {
    return this.#running.size;
  }

  /** Every task instance queued in or running on this executor. */
  heldKeys(): TaskInstanceKey[] {
    return [...this.#queued.values(), ...this.#running.values()].map((w) => w.key);
  }

  hasTask(key: TaskInstanceKey): boolean {
    const id = tiKeyString(key);
    return this.#queued.has(id) || this.#running.has(id);
  }

  async heartbeat(): Promise<void> {
    const slots = this.openSlots;
    if (slots > 0 && this.#queued.size > 0) {
      const ordered = [...this.#queued.values()].sort((a, b) => b.priorityWeight - a.priorityWeight || a.queuedAt - b.queuedAt);
      for (const workload of ordered.slice(0, Number.isFinite(slots) ? slots : undefined)) {
        const id = tiKeyString(workload.key);
        this.#queued.delete(id);
        this.#running.set(id, workload);
        try {
          await this.executeAsync(workload);
        } catch (error) {
          this.changeState(workload.key, { key: workload.key, state: 'failed', info: `could not start: ${(error as Error).message}` });
        }
      }
    }
    await this.sync();
  }

  /** Drains the finished-workload events. */
  getEventBuffer(): ExecutorEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }

  async start(): Promise<void> {}

  /**
   * Called inside the scheduler's enqueue transaction with the rows it marks queued, for an executor
   * whose broker is in the same database (graphile): undefined for executors that launch locally.
   */
  readonly onEnqueued: OnEnqueued | undefined = undefined;

  /**
   * Airflow's `try_adopt_task_instances`: takes over task instances that a dead scheduler queued and
   * that will still run without it (their job is in a broker), so they are not queued a second time.
   * Returns the keys adopted; executors whose work dies with its scheduler adopt none.
   */
  tryAdoptTaskInstances(_db: Db, _selfJobId: number, _deadThresholdMs: number): Promise<TaskInstanceKey[]> {
    return Promise.resolve([]);
  }

  /**
   * Airflow's `revoke_task` for `task_queued_timeout`: withdraws the task instances this executor
   * holds that were queued more than `olderThanMs` ago and that nothing has started yet, so none can
   * start later, and frees their slots; the scheduler then retries or fails them as stuck in queued.
   * Executors that start what they hold at once (Local, Sequential) have nothing to withdraw.
   */
  revokeStuckQueued(_db: Db, _olderThanMs: number): Promise<RevokedWorkload[]> {
    return Promise.resolve([]);
  }

  /** Forgets a held workload without an event: it was withdrawn. */
  protected release(key: TaskInstanceKey): void {
    const id = tiKeyString(key);
    this.#queued.delete(id);
    this.#running.delete(id);
  }

  /** Holds a workload as running without launching it: it was launched elsewhere (adopted, or already published). */
  protected holdRunning(workload: Workload): void {
    const id = tiKeyString(workload.key);
    this.#queued.delete(id);
    this.#running.set(id, workload);
  }

  /** The workloads launched and not yet finished. */
  protected runningWorkloads(): Workload[] {
    return [...this.#running.values()];
  }

  /** Waits for running workloads to finish, then releases resources. */
  abstract end(): Promise<void>;

  /** Stops running workloads as fast as possible. */
  abstract terminate(): Promise<void>;

  /**
   * Stops a workload this executor is running because the database says its try is over (a zombie):
   * executors that can (a worker process) kill it and free the slot. Returns whether it did.
   */
  cancelTask(_key: TaskInstanceKey, _reason: string): Promise<boolean> {
    return Promise.resolve(false);
  }

  protected abstract executeAsync(workload: Workload): void | Promise<void>;

  /** Collects finished workloads (executors that poll); event-driven executors call `changeState` directly. */
  protected sync(): void | Promise<void> {}

  protected changeState(key: TaskInstanceKey, event: ExecutorEvent): void {
    this.#running.delete(tiKeyString(key));
    this.#events.push(event);
    this.onChange();
  }
}
