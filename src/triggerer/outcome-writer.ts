import type { Logger } from 'pino';
import { sleep } from '../common/sleep.ts';
import { backoffMs } from '../common/wakeup.ts';
import type { Db } from '../db/database.ts';
import { isRetryableError } from '../db/retry.ts';
import { deleteSpentTriggers, submitTriggerOutcomes, type SubmitResult, type TriggerOutcome } from '../db/triggers.ts';

/** Delete spent trigger rows after events have stopped arriving for this long… */
const QUIET_MS = 50;
/**
 * …or at once when this many wait (a stream of events with no quiet moment). Large enough that a
 * burst of 100,000 events is written before any delete competes with it; 100,000 ids are 800 KB.
 */
const SPENT_BACKLOG = 100_000;
/** Rows per delete statement, so an event write never waits long behind one. */
const DELETE_CHUNK = 10_000;

/** What became of a submitted outcome. */
export type WriteResult = 'applied' | 'fenced';

export interface OutcomeWriterOptions<T extends TriggerOutcome> {
  db: Db;
  jobId: number;
  logger: Logger;
  /**
   * Called once per submitted outcome, with the outcome object itself, when it is committed
   * (`applied`) or refused by the fence (`fenced`). A callback, not a promise per outcome: in a burst
   * of 100,000 events every object kept per waiting outcome is copied by the garbage collector.
   */
  onResult: (outcome: T, result: WriteResult) => void;
  /** Most outcomes in one statement. @default 2000 */
  maxBatch?: number;
  /** Statements in flight at once, each on its own connection. @default 2 */
  maxConcurrent?: number;
  /** Once this many outcomes wait, a write starts at once instead of at the end of the tick. @default 500 */
  eagerBatch?: number;
  /** Called after each committed batch. */
  onWritten?: (result: SubmitResult, batchSize: number) => void;
}

/**
 * Group commit for trigger events and failures. A lone outcome is written at the end of the tick it
 * arrived in (no batching delay); outcomes that arrive together go in one set-based statement. In a
 * burst, writing starts as soon as `eagerBatch` outcomes wait — while the event loop is still firing
 * timers — with up to `maxConcurrent` statements in flight on disjoint triggers, so the database and
 * the triggerer work in parallel. A failed write is retried with backoff; nothing is dropped while
 * this triggerer owns the trigger.
 */
export class OutcomeWriter<T extends TriggerOutcome = TriggerOutcome> {
  readonly #options: Required<Omit<OutcomeWriterOptions<T>, 'onWritten'>> & Pick<OutcomeWriterOptions<T>, 'onWritten'>;
  #queue: T[] = [];
  /** Triggers whose outcome is stored: their rows are deleted when no event batch waits. */
  #spent: number[] = [];
  #inFlight = 0;
  #scheduled = false;
  #attempt = 0;
  #stopped = false;
  #idle: (() => void)[] = [];
  #flushing = false;
  #deleteTimer: NodeJS.Timeout | undefined;

  constructor(options: OutcomeWriterOptions<T>) {
    this.#options = { maxBatch: 2000, maxConcurrent: 2, eagerBatch: 500, ...options };
  }

  /** Queues an outcome; `onResult` reports what became of it. */
  submit(outcome: T): void {
    this.#queue.push(outcome);
    if (this.#queue.length >= this.#options.eagerBatch) this.#pump();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#pump();
      });
    }
  }

  get pending(): number {
    return this.#queue.length + this.#inFlight + this.#spent.length;
  }

  /** Waits until everything submitted so far is written (and the spent triggers deleted). */
  flush(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    this.#flushing = true;
    this.#pump();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops retrying: pending outcomes resolve as `fenced` (the rows stay owned and another triggerer redoes them). */
  abandon(): void {
    this.#stopped = true;
    clearTimeout(this.#deleteTimer);
    const dropped = this.#queue;
    this.#queue = [];
    this.#spent = [];
    for (const outcome of dropped) this.#options.onResult(outcome, 'fenced');
    this.#settleIdle();
  }

  /** Starts writes while there is work and a free slot; deletes spent triggers only when no event waits. */
  #pump(): void {
    const { maxBatch, maxConcurrent, eagerBatch } = this.#options;
    while (this.#queue.length > 0 && this.#inFlight < maxConcurrent && !this.#stopped) {
      // A share of the queue, not all of it up to maxBatch: at the end of a burst the last
      // outcomes go out as one statement per connection, in parallel, not as one long one.
      const share = Math.min(maxBatch, Math.max(eagerBatch, Math.ceil(this.#queue.length / maxConcurrent)));
      this.#run(this.#write(this.#queue.splice(0, share)));
    }
    if (this.#queue.length > 0 || this.#spent.length === 0 || this.#stopped) return;
    // Spent rows are deleted once events have stopped arriving for a moment, so the deletes never
    // compete with a burst's event writes (or at once when a large backlog builds, or on flush).
    if (this.#spent.length >= SPENT_BACKLOG || this.#flushing) this.#startDelete();
    else {
      clearTimeout(this.#deleteTimer);
      this.#deleteTimer = setTimeout(() => this.#startDelete(), QUIET_MS);
      this.#deleteTimer.unref();
    }
  }

  #startDelete(): void {
    clearTimeout(this.#deleteTimer);
    if (this.#queue.length > 0 || this.#inFlight >= this.#options.maxConcurrent || this.#spent.length === 0) return;
    this.#run(this.#deleteSpent(this.#spent.splice(0, DELETE_CHUNK)));
  }

  #run(work: Promise<void>): void {
    this.#inFlight++;
    void work.finally(() => {
      this.#inFlight--;
      this.#pump();
      this.#settleIdle();
    });
  }

  async #deleteSpent(ids: number[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await deleteSpentTriggers(this.#options.db, this.#options.jobId, ids);
        return;
      } catch (error) {
        // Left behind, they are harmless (their tasks left `deferred`) and the cleanup removes them.
        if (this.#stopped || !isRetryableError(error) || attempt >= 5) {
          this.#options.logger.warn({ err: error, triggers: ids.length }, 'could not delete spent triggers; the periodic cleanup will');
          return;
        }
        await sleep(backoffMs(attempt, 50, 2000));
      }
    }
  }

  #settleIdle(): void {
    if (this.pending > 0 && !this.#stopped) return;
    this.#flushing = false;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  async #write(batch: T[]): Promise<void> {
    // One outcome per trigger: the first one counts.
    const first = new Map<number, TriggerOutcome>();
    for (const outcome of batch) if (!first.has(outcome.triggerId)) first.set(outcome.triggerId, outcome);
    for (;;) {
      try {
        const result = await submitTriggerOutcomes(this.#options.db, this.#options.jobId, [...first.values()]);
        this.#attempt = 0;
        this.#options.onWritten?.(result, first.size);
        for (const id of result.applied) this.#spent.push(id);
        const { onResult } = this.#options;
        for (const outcome of batch) onResult(outcome, result.applied.has(outcome.triggerId) ? 'applied' : 'fenced');
        return;
      } catch (error) {
        if (this.#stopped) {
          for (const outcome of batch) this.#options.onResult(outcome, 'fenced');
          return;
        }
        if (!isRetryableError(error) && first.size > 1) {
          // Find the outcome the database refuses by halving; the rest still go through.
          const half = Math.ceil(batch.length / 2);
          await this.#write(batch.slice(0, half));
          await this.#write(batch.slice(half));
          return;
        }
        if (!isRetryableError(error)) {
          const [only] = first.values();
          if (only && only.kind === 'event') {
            this.#options.logger.error({ err: error, triggerId: only.triggerId }, 'could not store trigger event; failing the task instead');
            first.set(only.triggerId, {
              triggerId: only.triggerId,
              kind: 'failure',
              payload: { error: `the trigger's event could not be stored: ${(error as Error).message}`, traceback: '' },
            });
            continue;
          }
        }
        const delay = backoffMs(this.#attempt++, 50, 5000);
        this.#options.logger.warn({ err: error, batch: first.size, retryInMs: Math.round(delay) }, 'writing trigger events failed; retrying');
        await sleep(delay);
      }
    }
  }
}
