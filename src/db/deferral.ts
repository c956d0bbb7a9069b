import { sql } from 'kysely';
import type { JsonObject } from '../sdk/json.ts';
import type { Db } from './database.ts';
import { Channels, pgNotify } from './protocol.ts';
import { mapIndexOf, type TaskInstanceKey } from './schema.ts';
import { encodeTriggerKwargs } from './trigger-kwargs.ts';
import type { NewTrigger } from './triggers.ts';

/**
 * Which task instance may defer, i.e. what the write re-checks under the row lock:
 * - `running`: a worker's try defers from inside `execute` (or a resume method); the row must still
 *   be `running` this try. The row lock is waited for (a heartbeat holds it for a moment).
 * - `scheduledNewTry`: start_from_trigger — a scheduled task instance starts its next try in the
 *   triggerer, never on a worker. The row is taken FOR UPDATE SKIP LOCKED: the enqueue critical
 *   section locks scheduled rows the same way, so the row goes to exactly one of the two and neither
 *   waits.
 */
export type DeferralFence = { running: number } | { scheduledNewTry: true };

export interface DeferralWrite {
  fence: DeferralFence;
  trigger: NewTrigger;
  nextMethod: string;
  nextKwargs: JsonObject;
  /** Seconds from now, by the database clock, until the trigger times out; null for none. */
  timeoutSeconds: number | null;
  /**
   * The task's executionTimeout in seconds, measured from the try's `start_date` (its first start,
   * kept across resumes): the trigger timeout never passes it. Null for none.
   */
  executionTimeoutSeconds: number | null;
}

export interface WrittenDeferral {
  triggerId: number;
  /** The try the task instance is deferred in (a new one for `scheduledNewTry`). */
  tryNumber: number;
  /** When the trigger times out (database time), or null. */
  triggerTimeout: Date | null;
}

/**
 * The one deferral write, for a worker's defer and for start_from_trigger alike: inserts the
 * trigger, sets the task instance `deferred` pointing at it, and NOTIFYs the triggerers — ONE
 * statement, one round trip, all or nothing. `trigger_timeout` is computed by the database clock,
 * `least(now + timeout, start_date + executionTimeout)`, so a worker with a skewed clock cannot move
 * it. A new try (`scheduledNewTry`) increments try_number and starts now; a running try keeps both.
 * Nothing is inserted unless the fence holds (row lock + state re-check in `target`). Returns what
 * was written, or undefined if the task instance was no longer in the fenced state.
 */
export async function writeDeferral(db: Db, key: TaskInstanceKey, deferral: DeferralWrite): Promise<WrittenDeferral | undefined> {
  const { fence, trigger } = deferral;
  const newTry = 'scheduledNewTry' in fence;
  const fenced = newTry ? sql`ti.state = 'scheduled' AND ti.next_method IS NULL` : sql`ti.state = 'running' AND ti.try_number = ${fence.running}`;
  const lock = newTry ? sql`FOR UPDATE SKIP LOCKED` : sql`FOR UPDATE`;
  const { rows } = await sql<{ trigger_id: number | null; try_number: number | null; trigger_timeout: Date | null }>`
    WITH target AS (
      SELECT
        ti.try_number + ${newTry ? 1 : 0}::int AS try_number,
        CASE WHEN ${newTry} THEN clock_timestamp() ELSE ti.start_date END AS start_date,
        clock_timestamp() AS now
      FROM task_instance ti
      WHERE ti.dag_id = ${key.dagId} AND ti.run_id = ${key.runId} AND ti.task_id = ${key.taskId} AND ti.map_index = ${mapIndexOf(key)} AND ${fenced}
      ${lock}
    ),
    created AS (
      INSERT INTO trigger (classpath, kwargs, priority_weight)
      SELECT ${trigger.classpath}, ${encodeTriggerKwargs(trigger.kwargs)}::text, ${trigger.priorityWeight} FROM target
      RETURNING id
    ),
    deferred AS (
      UPDATE task_instance ti SET
        state = 'deferred',
        try_number = t.try_number,
        start_date = t.start_date,
        end_date = CASE WHEN ${newTry} THEN NULL ELSE ti.end_date END,
        error = CASE WHEN ${newTry} THEN NULL ELSE ti.error END,
        ready_at = NULL,
        trigger_id = c.id,
        next_method = ${deferral.nextMethod},
        next_kwargs = ${JSON.stringify(deferral.nextKwargs)}::jsonb,
        -- least() skips nulls: either bound alone, or none.
        trigger_timeout = least(
          t.now + make_interval(secs => ${deferral.timeoutSeconds}::float8),
          t.start_date + make_interval(secs => ${deferral.executionTimeoutSeconds}::float8)),
        hostname = NULL, pid = NULL, updated_at = now()
      FROM target t, created c
      WHERE ti.dag_id = ${key.dagId} AND ti.run_id = ${key.runId} AND ti.task_id = ${key.taskId} AND ti.map_index = ${mapIndexOf(key)}
      RETURNING ti.try_number, ti.trigger_timeout
    ),
    notified AS (
      SELECT ${pgNotify(Channels.trigger, 'new')} FROM created
    )
    SELECT (SELECT id FROM created) AS trigger_id, d.try_number, d.trigger_timeout, (SELECT count(*) FROM notified) AS notified
    FROM (SELECT 1) one LEFT JOIN deferred d ON true`.execute(db);
  const row = rows[0];
  if (!row || row.trigger_id === null || row.try_number === null) return undefined;
  return { triggerId: row.trigger_id, tryNumber: row.try_number, triggerTimeout: row.trigger_timeout };
}
