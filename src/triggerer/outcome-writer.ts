import type { Logger } from 'pino';
import { storableJson, storableText } from '../common/storable-json.ts';
import type { Db } from '../db/database.ts';
import { isRetryableError, withRetry } from '../db/retry.ts';
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

/**
 * What became of a submitted outcome: committed (`applied`); refused by the fence, or dropped by
 * `abandon()` (`fenced`: the row stays owned, and whoever owns it next redoes it); or given up after
 * the database refused it even in its sanitised and minimal forms, or kept conflicting past the cap
 * (`unwritten`: logged as an error; the task instance stays deferred until its timeout).
 */
export type WriteResult = 'applied' | 'fenced' | 'unwritten';

/** Writes a batch of outcomes in one statement (`submitTriggerOutcomes`'s signature). */
export type SubmitOutcomes = (db: Db, jobId: number, outcomes: readonly TriggerOutcome[]) => Promise<SubmitResult>;
/** Deletes spent trigger rows (`deleteSpentTriggers`'s signature). */
export type DeleteSpent = (db: Db, jobId: number, ids: readonly number[]) => Promise<void>;

export interface OutcomeWriterOptions<T extends TriggerOutcome> {
  db: Db;
  jobId: number;
  logger: Logger;
  /**
   * Called once per submitted outcome, with the outcome object itself, when it is committed
   * (`applied`), refused by the fence (`fenced`) or given up (`unwritten`). A callback, not a promise
   * per outcome: in a burst of 100,000 events every object kept per waiting outcome is copied by
   * the garbage collector.
   */
  onResult: (outcome: T, result: WriteResult) => void;
  /** Most outcomes in one statement. @default 2000 */
  maxBatch?: number;
  /** Statements in flight at once, each on its own connection. @default 2 */
  maxConcurrent?: number;
  /** Once this many outcomes wait, a write starts at once instead of at the end of the tick. @default 500 */
  eagerBatch?: number;
  /**
   * Attempts at a statement that keeps meeting a retryable error that is not about the connection
   * (serialization failure, deadlock, lock or transaction timeout). A lost connection or a server
   * restarting is retried until it lands or `abandon()`. @default 10
   */
  maxConflictAttempts?: number;
  /** Called after each committed batch. */
  onWritten?: (result: SubmitResult, batchSize: number) => void;
  /** The statement that writes outcomes. @default submitTriggerOutcomes */
  submitOutcomes?: SubmitOutcomes;
  /** The statement that deletes spent trigger rows. @default deleteSpentTriggers */
  deleteSpent?: DeleteSpent;
}

/**
 * Group commit for trigger events and failures. A lone outcome is written at the end of the tick it
 * arrived in (no batching delay); outcomes that arrive together go in one set-based statement. In a
 * burst, writing starts as soon as `eagerBatch` outcomes wait — while the event loop is still firing
 * timers — with up to `maxConcurrent` statements in flight on disjoint triggers, so the database and
 * the triggerer work in parallel.
 *
 * Every write ends. A lost connection is retried with backoff until it lands; a conflict
 * (serialization, deadlock) at most `maxConflictAttempts` times; an outcome the database refuses
 * (a NUL or a lone surrogate, which jsonb cannot hold) is found by halving the batch, then written
 * sanitised, or as a failure that says why. `abandon()` ends every backoff at once.
 */
export class OutcomeWriter<T extends TriggerOutcome = TriggerOutcome> {
  readonly #options: Required<Omit<OutcomeWriterOptions<T>, 'onWritten'>> & Pick<OutcomeWriterOptions<T>, 'onWritten'>;
  #queue: T[] = [];
  /** Triggers whose outcome is stored: their rows are deleted when no event batch waits. */
  #spent: number[] = [];
  #inFlight = 0;
  #scheduled = false;
  /** Aborted by `abandon()`: ends the backoff sleeps, and no statement starts after it. */
  readonly #stop = new AbortController();
  #idle: (() => void)[] = [];
  #flushing = false;
  #deleteTimer: NodeJS.Timeout | undefined;

  constructor(options: OutcomeWriterOptions<T>) {
    this.#options = {
      maxBatch: 2000,
      maxConcurrent: 2,
      eagerBatch: 500,
      maxConflictAttempts: 10,
      submitOutcomes: submitTriggerOutcomes,
      deleteSpent: deleteSpentTriggers,
      ...options,
    };
  }

  /** Queues an outcome; `onResult` reports what became of it. */
  submit(outcome: T): void {
    if (this.#stopped) {
      this.#options.onResult(outcome, 'fenced');
      return;
    }
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

  get #stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Waits until everything submitted so far is written (and the spent triggers deleted). */
  flush(): Promise<void> {
    if (this.pending === 0 || this.#stopped) return Promise.resolve();
    this.#flushing = true;
    this.#pump();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Stops retrying: queued outcomes, and those whose write is sleeping before a retry, resolve as
   * `fenced` at once (the rows stay owned and another triggerer redoes them). A statement already
   * running still reports what it did.
   */
  abandon(): void {
    if (this.#stopped) return;
    this.#stop.abort();
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
    if (this.#queue.length > 0 || this.#inFlight >= this.#options.maxConcurrent || this.#spent.length === 0 || this.#stopped) return;
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
    const { db, jobId, deleteSpent } = this.#options;
    try {
      await withRetry(() => deleteSpent(db, jobId, ids), { maxAttempts: 6, capMs: 2000, signal: this.#stop.signal });
    } catch (error) {
      // Left behind, they are harmless (their tasks left `deferred`) and the cleanup removes them.
      if (!this.#stopped) this.#options.logger.warn({ err: error, triggers: ids.length }, 'could not delete spent triggers; the periodic cleanup will');
    }
  }

  #settleIdle(): void {
    if (this.pending > 0 && !this.#stopped) return;
    this.#flushing = false;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  /** Writes a batch and reports every outcome in it; never throws. */
  async #write(batch: T[]): Promise<void> {
    const { onResult } = this.#options;
    // One outcome per trigger: the first one counts; a later one was not written.
    const first = new Map<number, T>();
    for (const outcome of batch) {
      if (!first.has(outcome.triggerId)) first.set(outcome.triggerId, outcome);
      else onResult(outcome, 'fenced');
    }
    await this.#writeEach([...first.values()]);
  }

  /** Writes outcomes for distinct triggers and reports each. */
  async #writeEach(outcomes: T[]): Promise<void> {
    const { onResult } = this.#options;
    try {
      const result = await this.#submit(outcomes);
      for (const outcome of outcomes) onResult(outcome, result.applied.has(outcome.triggerId) ? 'applied' : 'fenced');
    } catch (error) {
      if (this.#stopped) {
        for (const outcome of outcomes) onResult(outcome, 'fenced');
      } else if (outcomes.length > 1) {
        // Find the outcome the database refuses by halving; the rest still go through. One half
        // after the other: this write holds one of the `maxConcurrent` slots, not two.
        const half = Math.ceil(outcomes.length / 2);
        await this.#writeEach(outcomes.slice(0, half));
        await this.#writeEach(outcomes.slice(half));
      } else {
        const [only] = outcomes as [T];
        onResult(only, await this.#writeRefused(only, error));
      }
    }
  }

  /** One outcome whose write failed for good: written sanitised, or as a failure that says why, or given up. */
  async #writeRefused(outcome: T, error: unknown): Promise<WriteResult> {
    const { logger } = this.#options;
    const log = logger.child({ triggerId: outcome.triggerId, kind: outcome.kind });
    let last = error;
    if (!isRetryableError(error)) {
      for (const [why, substitute] of storableForms(outcome, error)) {
        log.warn({ err: describeError(last) }, `the database refused a trigger ${outcome.kind}; writing ${why} instead`);
        try {
          const result = await this.#submit([substitute]);
          return result.applied.has(outcome.triggerId) ? 'applied' : 'fenced';
        } catch (next) {
          if (this.#stopped) return 'fenced';
          last = next;
          if (isRetryableError(next)) break;
        }
      }
    }
    log.error({ err: describeError(last) }, 'giving up writing a trigger outcome; its task instance stays deferred until its timeout');
    return 'unwritten';
  }

  /**
   * One statement, retried with backoff: a lost connection until it lands (or `abandon()`), a
   * conflict up to `maxConflictAttempts` times. Anything else is thrown at once.
   */
  async #submit(outcomes: readonly TriggerOutcome[]): Promise<SubmitResult> {
    const { db, jobId, submitOutcomes, maxConflictAttempts, logger } = this.#options;
    let conflicts = 0;
    const result = await withRetry(() => submitOutcomes(db, jobId, outcomes), {
      capMs: 5000,
      signal: this.#stop.signal,
      retryable: (error) => isRetryableError(error) && (!isConflict(error) || ++conflicts < maxConflictAttempts),
      onRetry: (error, attempt, delay) =>
        logger.warn({ err: describeError(error), batch: outcomes.length, attempt: attempt + 1, retryInMs: Math.round(delay) }, 'writing trigger outcomes failed; retrying'),
    });
    this.#options.onWritten?.(result, outcomes.length);
    for (const id of result.applied) this.#spent.push(id);
    return result;
  }
}

/**
 * Retryable errors that are about the statement, not the connection: another transaction won. They
 * are retried a bounded number of times; the rest of `RETRYABLE_SQLSTATES` (and a lost socket) mean
 * the server is away, and waiting for it is all there is to do.
 */
const CONFLICT_SQLSTATES = new Set(['40001', '40P01', '55P03', '25P04']);

function isConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONFLICT_SQLSTATES.has(code);
}

/** The longest error text kept in a substitute failure. */
const MAX_REASON_LENGTH = 1000;

/**
 * What to write instead of an outcome the database refused, in order: the outcome with its strings
 * sanitised (when that changes anything), then a failure that says why, with nothing of the
 * payload (which may be what the database refuses, or too large to store).
 */
function storableForms(outcome: TriggerOutcome, error: unknown): [string, TriggerOutcome][] {
  const forms: [string, TriggerOutcome][] = [];
  const sanitised = storableJson(outcome.payload);
  if (sanitised !== outcome.payload) forms.push([`it with NUL characters and lone surrogates replaced by U+FFFD`, { ...outcome, payload: sanitised }]);
  const reason = storableText(describeError(error).message, MAX_REASON_LENGTH);
  const what = outcome.kind === 'event' ? 'event' : 'failure (error and traceback)';
  forms.push([
    'a failure that says why',
    {
      triggerId: outcome.triggerId,
      kind: 'failure',
      payload: { error: `the trigger's ${what} could not be stored: the database refused it (${reason})`, traceback: '' },
    },
  ]);
  return forms;
}

/** A database error as logs and substitute failures show it: SQLSTATE and message, never the statement's parameters. */
function describeError(error: unknown): { message: string; code?: string } {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' ? { message: `SQLSTATE ${code}: ${message}`, code } : { message };
}
