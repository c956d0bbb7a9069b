import type { Logger } from 'pino';
import { TypedEmitter } from '../common/typed-emitter.ts';
import { backoffMs, Wakeup } from '../common/wakeup.ts';
import type { Db } from '../db/database.ts';
import type { TaskInstanceKey } from '../db/schema.ts';
import { msUntilNextDue, sweepTriggerTimeouts } from '../db/task-instances.ts';

export interface TimeoutSweeperOptions {
  db: Db;
  logger: Logger;
  /** Re-read the next deadline at least this often. @default 10000 */
  pollIntervalMs?: number;
}

/**
 * How long a nudge waits before the sweeper looks. A nudge means a new deferral, whose trigger is
 * being claimed (and, if already due, fired and written) at that very moment: a sweep transaction
 * beside it cost that path about 0.5 ms on two cores (bench `due`). A new deferral's timeout is
 * rarely due within this.
 */
const NUDGE_DELAY_MS = 50;

export interface TimeoutSweeperEvents {
  'timed-out': TaskInstanceKey[];
}

/**
 * Fails deferred task instances whose trigger_timeout has passed, within milliseconds of the deadline
 * (Airflow sweeps every 15 s). It sleeps until the earliest deadline in the database; `nudge()` (a new
 * deferral) makes it look again. Schedulers and triggerers both run one, so timeouts fire whether
 * or not a triggerer is up; the sweep is idempotent and concurrent sweepers skip each other's rows.
 */
export class TimeoutSweeper extends TypedEmitter<TimeoutSweeperEvents> {
  readonly #options: TimeoutSweeperOptions;
  readonly #wakeup = new Wakeup();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #nudgeTimer: NodeJS.Timeout | undefined;

  constructor(options: TimeoutSweeperOptions) {
    super();
    this.#options = options;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Look again shortly (`NUDGE_DELAY_MS`): a new deferral may carry an earlier deadline. */
  nudge(): void {
    if (this.#nudgeTimer !== undefined || this.#stop.signal.aborted) return;
    this.#nudgeTimer = setTimeout(() => {
      this.#nudgeTimer = undefined;
      this.#wakeup.nudge();
    }, NUDGE_DELAY_MS);
    this.#nudgeTimer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#nudgeTimer);
    this.#nudgeTimer = undefined;
    this.#stop.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { db, logger } = this.#options;
    const poll = this.#options.pollIntervalMs ?? 10_000;
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      let waitMs = poll;
      try {
        const timedOut = await sweepTriggerTimeouts(db);
        if (timedOut.length > 0) {
          logger.info({ count: timedOut.length }, 'deferred task instances timed out');
          this.emit('timed-out', timedOut);
          continue; // there may be more past their deadline
        }
        const dueInMs = await msUntilNextDue(db, 'trigger-timeouts');
        // A deadline already due but not swept is locked by another sweeper: look again shortly.
        if (dueInMs !== null) waitMs = Math.min(poll, Math.max(10, dueInMs + 1));
        failures = 0;
      } catch (error) {
        if (this.#stop.signal.aborted) break;
        logger.error({ err: error }, 'trigger timeout sweep failed');
        waitMs = backoffMs(failures++, 200, poll);
      }
      await this.#wakeup.wait(waitMs, this.#stop.signal);
    }
  }
}
