import type { Logger } from 'pino';
import { sleep } from '../common/sleep.ts';
import { backoffMs } from '../common/wakeup.ts';
import { isRetryableError, type Db } from '../db/database.ts';
import { submitTriggerOutcomes, type SubmitResult, type TriggerOutcome } from '../db/triggers.ts';

/** What became of a submitted outcome. */
export type WriteResult = 'applied' | 'fenced';

interface Pending {
  outcome: TriggerOutcome;
  resolve: (result: WriteResult) => void;
}

export interface OutcomeWriterOptions {
  db: Db;
  jobId: number;
  logger: Logger;
  /** Most outcomes in one statement. @default 5000 */
  maxBatch?: number;
  /** Called after each committed batch. */
  onWritten?: (result: SubmitResult, batchSize: number) => void;
}

/**
 * Group commit for trigger events and failures. Outcomes that arrive while a write is in flight wait
 * and go together in the next statement, so a burst of thousands of firings becomes a handful of
 * set-based writes, and a lone firing is written at once (no batching delay). A failed write is
 * retried with backoff; nothing is dropped while this triggerer owns the trigger.
 */
export class OutcomeWriter {
  readonly #options: OutcomeWriterOptions;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #attempt = 0;
  #stopped = false;

  constructor(options: OutcomeWriterOptions) {
    this.#options = options;
  }

  /** Resolves once the outcome is committed (`applied`) or refused by the fence (`fenced`). */
  submit(outcome: TriggerOutcome): Promise<WriteResult> {
    return new Promise((resolve) => {
      this.#queue.push({ outcome, resolve });
      this.#flushing ??= this.#drain();
    });
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** Waits until everything submitted so far is written. */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  /** Stops retrying: pending outcomes resolve as `fenced` (the rows stay owned and another triggerer redoes them). */
  abandon(): void {
    this.#stopped = true;
    const dropped = this.#queue;
    this.#queue = [];
    for (const p of dropped) p.resolve('fenced');
  }

  async #drain(): Promise<void> {
    // Let the outcomes produced in this tick (timers due together) join the first batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (this.#queue.length > 0 && !this.#stopped) {
        const batch = this.#queue.splice(0, this.#options.maxBatch ?? 5000);
        await this.#write(batch);
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #write(batch: Pending[]): Promise<void> {
    // One outcome per trigger: the first one counts.
    const first = new Map<number, TriggerOutcome>();
    for (const p of batch) if (!first.has(p.outcome.triggerId)) first.set(p.outcome.triggerId, p.outcome);
    for (;;) {
      try {
        const result = await submitTriggerOutcomes(this.#options.db, this.#options.jobId, [...first.values()]);
        this.#attempt = 0;
        this.#options.onWritten?.(result, first.size);
        for (const p of batch) p.resolve(result.fenced.has(p.outcome.triggerId) ? 'applied' : 'fenced');
        return;
      } catch (error) {
        if (this.#stopped) {
          for (const p of batch) p.resolve('fenced');
          return;
        }
        if (!isRetryableError(error) && first.size > 1) {
          // Find the outcome the database refuses by halving; the rest still go through.
          const entries = [...batch];
          const half = Math.ceil(entries.length / 2);
          await this.#write(entries.slice(0, half));
          await this.#write(entries.slice(half));
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
