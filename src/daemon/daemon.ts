import type { Logger } from 'pino';
import { CleanupStack } from '../common/cleanup-stack.ts';
import { sleep } from '../common/sleep.ts';
import { TypedEmitter } from '../common/typed-emitter.ts';
import { backoffMs, type Wakeup } from '../common/wakeup.ts';
import type { Db } from '../db/database.ts';
import { endJob, heartbeatJob, registerJob, type NewJob } from '../db/jobs.ts';
import type { Notifier, NotifierEvents } from '../db/notifier.ts';

export type DaemonState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * What every tsflow daemon (scheduler, triggerer) is: constructed with its dependencies, started and
 * stopped once each (both idempotent: the promise in flight is kept), with an explicit state. What
 * `onStart` sets up it registers as shutdown steps (`onStop`), which run in reverse order — on
 * `stop()`, and also when the start itself fails half-way, so a daemon that could not start still
 * ends its job row and leaves nothing running. Every step runs even when an earlier one fails; the
 * failures are logged one by one and thrown together.
 */
export abstract class Daemon<Events extends { [K in keyof Events]: unknown }> extends TypedEmitter<Events> {
  protected readonly log: Logger;
  readonly #name: string;
  readonly #steps = new CleanupStack();
  readonly #stopLoops = new AbortController();
  #state: DaemonState = 'created';
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #beatingSince: number | undefined;

  constructor(name: string, logger: Logger) {
    super();
    this.#name = name;
    this.log = logger.child({ component: name });
  }

  get state(): DaemonState {
    return this.#state;
  }

  /** Aborted when `stop()` begins: loops and sleeps end on it. */
  protected get stopSignal(): AbortSignal {
    return this.#stopLoops.signal;
  }

  start(): Promise<void> {
    if (this.#stopping) return Promise.reject(new Error(`a ${this.#name} cannot start again once stopped: construct a new one`));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Sets the daemon up; each thing it starts is undone by an `onStop` step registered right after. */
  protected abstract onStart(): Promise<void>;

  /** A shutdown step; steps run in the reverse order of registration. */
  protected onStop(name: string, step: () => unknown): void {
    this.#steps.push(name, async () => {
      try {
        await step();
      } catch (error) {
        this.log.error({ err: error, step: name }, 'shutdown step failed');
        throw error;
      }
    });
  }

  async #start(): Promise<void> {
    if (this.#state !== 'created') throw new Error(`a ${this.#name} cannot start from state ${this.#state}`);
    this.#state = 'starting';
    try {
      await this.onStart();
      this.#state = 'running';
    } catch (error) {
      this.#state = 'stopping';
      this.#stopLoops.abort();
      await this.#steps.runAll().catch((cleanupError: unknown) => this.log.error({ err: cleanupError }, 'cleanup after a failed start failed'));
      this.#state = 'stopped';
      throw error;
    }
  }

  async #stop(): Promise<void> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    if (this.#state !== 'running') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    this.#stopLoops.abort();
    try {
      await this.#steps.runAll();
    } finally {
      this.#state = 'stopped';
      this.afterStop();
    }
  }

  /** Called once when a daemon that was running has run all its shutdown steps. */
  protected afterStop(): void {}

  /** Registers the daemon's `job` row; the row is marked ended on stop, or if the start fails after this. */
  protected async registerJob(db: Db, job: NewJob): Promise<number> {
    const jobId = await registerJob(db, job);
    this.log.setBindings({ jobId });
    this.onStop('end job', () => endJob(db, jobId, 'success'));
    return jobId;
  }

  /**
   * Writes the job's heartbeat every `intervalMs` (database time) and calls `onBeat` after each one
   * that landed. A failed beat (the database is down) is logged and the next one tried on time.
   */
  protected startHeartbeat(db: Db, jobId: number, intervalMs: number, onBeat: () => void = () => undefined): void {
    let beating = false;
    const timer = setInterval(() => {
      if (beating || this.stopSignal.aborted) return;
      beating = true;
      heartbeatJob(db, jobId)
        .then(
          () => {
            this.#beatingSince ??= Date.now();
            onBeat();
          },
          (error: unknown) => {
            this.#beatingSince = undefined;
            this.log.warn({ err: error }, 'heartbeat failed');
          },
        )
        .finally(() => (beating = false));
    }, intervalMs);
    this.onStop('heartbeat', () => clearInterval(timer));
  }

  /**
   * How long this daemon's heartbeat has been landing without a miss (0 before the first beat, and
   * again after a failed one). A peer's stale heartbeat only means it is dead once this daemon has
   * itself been beating for a whole threshold: right after a database outage every heartbeat is
   * stale, and the first daemon back must not take its live peers' work.
   */
  protected get heartbeatStreakMs(): number {
    return this.#beatingSince === undefined ? 0 : Date.now() - this.#beatingSince;
  }

  /** Listens to the notifier until stop. */
  protected subscribe(notifier: Notifier | undefined, handlers: {
    notification: (payload: NotifierEvents['notification']) => void;
    reconnected: () => void;
  }): void {
    if (!notifier) return;
    const offs = [notifier.on('notification', handlers.notification), notifier.on('reconnected', handlers.reconnected)];
    this.onStop('unsubscribe', () => {
      for (const off of offs) off();
    });
  }

  /**
   * The daemon's loop: `pass(nudged)` does one look at the database and returns how long to sleep;
   * the sleep ends early on `wakeup.nudge()` (a NOTIFY) and at stop. A pass that throws is logged and
   * retried after a jittered backoff that grows with consecutive failures (capped at 10 s), so a
   * database that is down costs a few quiet attempts, never a hot spin or an exit.
   */
  protected runLoop(name: string, wakeup: Wakeup, pass: (nudged: boolean) => Promise<number>): void {
    const signal = this.stopSignal;
    const loop = (async () => {
      let failures = 0;
      let nudged = true;
      while (!signal.aborted) {
        let waitMs: number;
        try {
          waitMs = await pass(nudged);
          failures = 0;
        } catch (error) {
          if (signal.aborted) break;
          const delay = backoffMs(failures++, 200, 10_000);
          this.log.error({ err: error, retryInMs: Math.round(delay) }, `${name} pass failed`);
          await sleep(delay, signal);
          nudged = true;
          continue;
        }
        nudged = await wakeup.wait(waitMs, signal);
      }
    })();
    this.onStop(name, () => loop);
  }
}
