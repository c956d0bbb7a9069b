import type { TaskInstanceRow } from '../db/schema.ts';
import { isRetryableError, withRetry } from '../db/retry.ts';
import { getTaskInstance } from '../db/task-instances.ts';
import { describeError } from './task-outcome.ts';
import { OutcomeNotRecordedError } from './runner-errors.ts';
import type { TryRun } from './try-run.ts';

/** One of a try's last writes (success, failure, retry, skip, reschedule, defer): fenced on the try still running. */
export interface FinalWrite<T> {
  /** The state it writes, for the log. */
  readonly state: string;
  /** The fenced statement: what it returns when it landed, undefined when the row was not `running` this try. */
  write(): Promise<T | undefined>;
  /** Whether `row` is what this write leaves behind, and then what it would have returned. */
  landedIn(row: TaskInstanceRow): T | undefined;
}

export type FinalWriteResult<T> = { landed: true; value: T } | { landed: false };

/** Backoff between attempts: from 100 ms up to 2 s, so a write lands soon after the database is back. */
const BACKOFF = { baseMs: 100, capMs: 2000 };

/**
 * Lands a try's last write. A retryable failure — a dropped connection, a server restarting — is retried
 * with backoff until the write lands or the row shows the try is no longer ours; the try's heartbeat
 * keeps beating meanwhile, so it is not taken for a zombie.
 *
 * A failure may hide a commit: the statement committed and the connection died before the reply. The
 * next attempt then finds the row no longer `running` this try, and reads it to tell "our write
 * landed" (the state and the try are what we wrote) from "someone else moved it" (cleared, failed as
 * a zombie): the first is our outcome, the second `{ landed: false }`.
 *
 * When the worker is told to stop, the retries stop and the row is left `running` for the scheduler's
 * lost-try handling: OutcomeNotRecordedError. A write the database refuses is thrown at once.
 */
export async function landFinalWrite<T>(t: TryRun, write: FinalWrite<T>): Promise<FinalWriteResult<T>> {
  let failures = 0;
  const uncertain = (): boolean => failures > 0;
  const attempt = async (): Promise<FinalWriteResult<T>> => {
    const value = await write.write();
    if (value !== undefined) return { landed: true, value };
    if (!uncertain()) return { landed: false };
    const row = await getTaskInstance(t.deps.db, t.key);
    const ours = row === undefined ? undefined : write.landedIn(row);
    if (ours === undefined) return { landed: false };
    t.processLog.info({ state: write.state }, "the try's outcome had landed before the connection dropped");
    return { landed: true, value: ours };
  };
  try {
    const result = await withRetry(attempt, {
      ...BACKOFF,
      signal: t.signal,
      onRetry: (error, attempts, delayMs) => {
        failures++;
        // The first failure and every tenth after it: an outage of minutes is a few lines, not hundreds.
        if (attempts % 10 !== 0) return;
        const fields = { state: write.state, attempt: attempts + 1, retryInMs: Math.round(delayMs), error: describeError(error) };
        t.processLog.warn(fields, "could not record the try's outcome; retrying until it lands");
        if (t.log !== t.processLog) t.log.warn(fields, "could not record the try's outcome; retrying until it lands");
      },
    });
    if (failures > 0) t.processLog.info({ state: write.state, landed: result.landed, failedAttempts: failures }, "the try's last write went through after the database came back");
    return result;
  } catch (error) {
    const stopped = t.signal?.aborted === true && isRetryableError(error);
    const message = stopped
      ? `the worker was told to stop before the try's outcome (${write.state}) could be recorded: the task instance stays running until the scheduler fails it as lost`
      : `the database refused the try's outcome (${write.state}): ${describeError(error)}`;
    t.processLog.error({ err: error, state: write.state }, message);
    if (t.log !== t.processLog) t.log.error({ err: error, state: write.state }, message);
    throw new OutcomeNotRecordedError(message, { cause: error });
  }
}
