import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import type { TryClaim } from '../db/task-instances.ts';
import type { TaskRunResult, TaskStateChange } from '../runner/task-runner.ts';
import { isFromWorker, type FromWorker, type ToWorker, type WorkerConfig } from './worker-protocol.ts';

export interface WorkerProcessOptions {
  /** The script to fork; it is given the argument `task-worker`. */
  entry: string;
  config: WorkerConfig;
  logger: Logger;
  /** How long the process may take to start and connect to the database. */
  startTimeoutMs: number;
  /** After a task's executionTimeout, how long the worker gets to record the timeout itself before it is killed. */
  timeoutGraceMs: number;
}

/** How a run on a worker ended, when the worker itself survived it. */
export type RunOutcome = { kind: 'done'; result: TaskRunResult } | { kind: 'error'; message: string; stale?: boolean };

export type WorkerProcessState = 'starting' | 'idle' | 'busy' | 'retiring' | 'exited';

export interface WorkerExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why tsflow stopped it, when it did. */
  reason: string | undefined;
}

/** The worker process died (crashed, was killed, lost its IPC channel) — with the task it held, if any. */
export class WorkerLostError extends Error {
  override name = 'WorkerLostError';
}

interface PendingRun {
  key: TaskInstanceKey;
  onState: (change: TaskStateChange) => void;
  resolve: (outcome: RunOutcome) => void;
  reject: (error: Error) => void;
  deadlineTimer?: NodeJS.Timeout;
}

/**
 * One long-lived worker process, seen from the executor: forked through the tsflow command (so DAG
 * files load with the same TypeScript loader and `tsflow` import mapping), it runs one task instance
 * at a time and reports each state it commits. Its `exited` promise settles when the process is gone.
 */
export class WorkerProcess {
  readonly pid: number;
  readonly exited: Promise<WorkerExit>;
  readonly #child: ChildProcess;
  readonly #options: WorkerProcessOptions;
  readonly #log: Logger;
  #state: WorkerProcessState = 'starting';
  #run: PendingRun | undefined;
  #stopReason: string | undefined;
  #onReady: ((message: FromWorker) => void) | undefined;

  private constructor(options: WorkerProcessOptions) {
    this.#options = options;
    // No inherited execArgv: the entry registers its own loaders. stdout and stderr are shared with
    // this process (worker logs are JSON lines on stderr, like every daemon's).
    this.#child = fork(options.entry, ['task-worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], serialization: 'json' });
    if (this.#child.pid === undefined) throw new Error(`could not fork a worker process from ${options.entry}`);
    this.pid = this.#child.pid;
    this.#log = options.logger.child({ workerPid: this.pid });
    this.#child.on('message', (message) => this.#receive(message));
    // A failed send (channel closed) surfaces as the exit below; nothing else to do here.
    this.#child.on('error', (error) => this.#log.warn({ err: error }, 'worker process error'));
    this.exited = new Promise((resolve) => {
      // 'close' rather than 'exit': it comes after every IPC message the worker sent was delivered.
      this.#child.once('close', (code, signal) => {
        this.#state = 'exited';
        const exit = { pid: this.pid, code, signal, reason: this.#stopReason };
        const run = this.#run;
        this.#run = undefined;
        if (run) {
          clearTimeout(run.deadlineTimer);
          run.reject(new WorkerLostError(`worker process ${this.pid} ${describeExit(exit)} while running ${tiKeyString(run.key)}`));
        }
        resolve(exit);
      });
    });
  }

  /** Forks a worker and waits until it has connected to the database. */
  static async start(options: WorkerProcessOptions): Promise<WorkerProcess> {
    const worker = new WorkerProcess(options);
    try {
      await worker.#handshake();
    } catch (error) {
      await worker.kill('it did not start');
      throw error;
    }
    return worker;
  }

  get state(): WorkerProcessState {
    return this.#state;
  }

  /** The task instance it is running, if any. */
  get currentKey(): TaskInstanceKey | undefined {
    return this.#run?.key;
  }

  /** Runs one task instance; rejects with WorkerLostError if the process dies meanwhile. */
  run(key: TaskInstanceKey, onState: (change: TaskStateChange) => void, claim?: TryClaim): Promise<RunOutcome> {
    if (this.#state !== 'idle') return Promise.reject(new Error(`worker process ${this.pid} is ${this.#state}, not idle`));
    this.#state = 'busy';
    return new Promise<RunOutcome>((resolve, reject) => {
      this.#run = { key, onState, resolve, reject };
      this.#send({ type: 'run', key, ...(claim ? { claim } : {}) });
    });
  }

  /** Asks an idle worker to close its connections and exit; kills it if it has not within `timeoutMs`. */
  async shutdown(timeoutMs: number): Promise<WorkerExit> {
    if (this.#state !== 'exited') {
      this.#stopReason ??= 'shut down';
      this.#send({ type: 'shutdown' });
      await this.#escalate(timeoutMs, 'it did not shut down in time');
    }
    return this.exited;
  }

  /**
   * SIGTERM: the worker tells its task to stop, records the try as failed (or up for retry), and
   * exits; after `graceMs` it is killed.
   */
  async terminate(graceMs: number, reason: string): Promise<WorkerExit> {
    if (this.#state !== 'exited') {
      this.#stopReason ??= reason;
      this.#child.kill('SIGTERM');
      await this.#escalate(graceMs, `${reason}; it did not stop within ${graceMs} ms`);
    }
    return this.exited;
  }

  /** SIGKILL, now; a task it held is lost (and reported as such by `run`). */
  async kill(reason: string): Promise<WorkerExit> {
    if (this.#state !== 'exited') {
      this.#stopReason ??= reason;
      this.#log.warn({ reason, task: this.#run?.key }, 'killing worker process');
      this.#child.kill('SIGKILL');
    }
    return this.exited;
  }

  async #escalate(timeoutMs: number, reason: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
    const gone = await Promise.race([this.exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (gone) {
      this.#stopReason = reason;
      await this.kill(reason);
    }
  }

  #handshake(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker process ${this.pid} did not report ready within ${this.#options.startTimeoutMs} ms`)),
        this.#options.startTimeoutMs,
      );
      this.#onReady = (message) => {
        clearTimeout(timer);
        this.#onReady = undefined;
        if (message.type === 'ready') {
          this.#state = 'idle';
          resolve();
        } else {
          reject(new Error(`worker process ${this.pid} could not start: ${message.type === 'init-failed' ? message.message : message.type}`));
        }
      };
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`worker process ${this.pid} ${describeExit(exit)} before it was ready (see its error above)`));
      });
      this.#send({ type: 'init', config: this.#options.config });
    });
  }

  #send(message: ToWorker): void {
    if (!this.#child.connected) return; // it is exiting; 'close' settles whatever waits on it
    this.#child.send(message, (error) => {
      if (error) this.#log.warn({ err: error, message: message.type }, 'could not send to the worker process');
    });
  }

  #receive(message: unknown): void {
    if (!isFromWorker(message)) {
      this.#log.warn({ message }, 'ignoring an unknown message from the worker process');
      return;
    }
    if (message.type === 'ready' || message.type === 'init-failed') {
      this.#onReady?.(message);
      return;
    }
    const run = this.#run;
    if (!run) {
      this.#log.warn({ message: message.type }, 'a message from an idle worker process');
      return;
    }
    switch (message.type) {
      case 'state':
        if (message.change.state === 'running' && message.change.executionDeadline !== undefined) this.#guardDeadline(run, message.change.executionDeadline);
        run.onState(message.change);
        return;
      case 'done':
      case 'error':
        clearTimeout(run.deadlineTimer);
        this.#run = undefined;
        this.#state = 'idle';
        if (message.type === 'done' && message.retire) {
          // It exits by itself; it takes no further task, and its exit is expected.
          this.#state = 'retiring';
          this.#stopReason ??= 'retired: a DAG file it had imported changed and cannot be re-imported';
        }
        run.resolve(message.type === 'done' ? { kind: 'done', result: message.result } : { kind: 'error', message: message.message, ...(message.stale ? { stale: true } : {}) });
        return;
    }
  }

  /**
   * The worker enforces a task's executionTimeout itself; this is the backstop for a task that keeps
   * the worker's event loop busy so that its timer cannot fire: past the deadline and a grace period,
   * the process is killed.
   */
  #guardDeadline(run: PendingRun, deadline: number): void {
    clearTimeout(run.deadlineTimer);
    const delay = Math.max(0, deadline - Date.now()) + this.#options.timeoutGraceMs;
    run.deadlineTimer = setTimeout(() => {
      if (this.#run !== run) return;
      void this.kill(`the task passed its executionTimeout and its worker did not stop it within ${this.#options.timeoutGraceMs} ms`);
    }, delay);
  }
}

function describeExit(exit: WorkerExit): string {
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  return exit.reason ? `${how} (${exit.reason})` : how;
}
