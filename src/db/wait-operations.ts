import { sql } from 'kysely';
import { toDuration, type DurationInput } from '../sdk/duration.ts';
import type { JsonObject } from '../sdk/json.ts';
import { describeWait } from '../triggerer/describe-wait.ts';
import type { Db } from './database.ts';
import { Channels, FAIL_METHOD, notify } from './protocol.ts';
import { rowKey, type TaskInstanceKey } from './schema.ts';
import { submitTriggerOutcomes } from './triggers.ts';
import { tryDecodeTriggerKwargs } from './trigger-kwargs.ts';

/*
 * Operating a pending wait (issue 14): fire it now, cancel it, or move its timeout. Each is one
 * transaction that first locks the trigger row, then its deferred task instance rows. Lock order:
 * nothing else holds a task_instance lock while waiting for a trigger row lock (the timeout sweep
 * and clear take trigger rows with SKIP LOCKED; event writes lock only task instances; claims,
 * releases and deletions of trigger rows hold no task_instance lock), so these cannot deadlock with
 * them. A triggerer's event write racing an operation finds the task instance no longer `deferred`
 * once the operation commits (or the operation finds it so, and says the wait is no longer pending).
 */

/** No trigger row has this id: it never existed, or it already fired, timed out or was cancelled. */
export class WaitNotFoundError extends Error {
  override name = 'WaitNotFoundError';
  readonly triggerId: number;
  constructor(triggerId: number) {
    super(`no pending trigger ${triggerId}: no such id, or it already fired, timed out or was cancelled (tsflow triggers list shows the pending ones)`);
    this.triggerId = triggerId;
  }
}

/** The trigger row is still there but no task instance waits on it any more (its event is being written, or its task was cleared). */
export class WaitNotPendingError extends Error {
  override name = 'WaitNotPendingError';
  readonly triggerId: number;
  constructor(triggerId: number) {
    super(`trigger ${triggerId} is no longer pending: no task instance is deferred on it any more (it fired, timed out or was cleared a moment ago)`);
    this.triggerId = triggerId;
  }
}

/** A request that cannot be carried out as asked (a bad id, actor or timeout). */
export class InvalidWaitOperationError extends Error {
  override name = 'InvalidWaitOperationError';
}

/** The task instances a wait held, as they were when the operation locked them. */
export interface WaitingTask extends TaskInstanceKey {
  tryNumber: number;
  triggerTimeout: Date | null;
}

export interface FiredWait {
  triggerId: number;
  actor: string;
  /** Database time of the fire. */
  firedAt: Date;
  /** The event payload stored for the task (`next_kwargs.event`): see `firePayload`. */
  payload: JsonObject;
  /** The task instances that resumed (now `scheduled`, to run their `next_method` with the event). */
  resumed: WaitingTask[];
}

export interface CancelledWait {
  triggerId: number;
  actor: string;
  /** The error the task's try fails with. */
  error: string;
  /** The task instances whose try now fails (they go back to the schedule and fail on a worker, retries applying). */
  failed: WaitingTask[];
}

export interface ExtendedWait {
  triggerId: number;
  actor: string;
  /** The new timeout (database time). */
  triggerTimeout: Date;
  /** Each task instance, with its timeout before the change. */
  tasks: WaitingTask[];
}

/**
 * `{ until }`: the timeout becomes that moment. `{ by }`: the current timeout moves that much later
 * (a luxon Duration, `{ minutes: 30 }`, `'PT30M'` or seconds); a wait without a timeout has none to move.
 */
export type WaitExtension = { until: Date } | { by: DurationInput };

/** Job ids start at 1: an operator's fire takes the trigger over under this id inside its transaction. */
const OPERATOR_FENCE = 0;

const MAX_ACTOR_LENGTH = 200;

function checkedId(triggerId: number): number {
  if (!Number.isSafeInteger(triggerId) || triggerId < 1) {
    throw new InvalidWaitOperationError(`a trigger id is a whole number ≥ 1, got ${String(triggerId)}`);
  }
  return triggerId;
}

function checkedActor(actor: string): string {
  const name = actor.trim();
  if (name === '' || name.length > MAX_ACTOR_LENGTH || /[\p{Cc}]/u.test(name)) {
    throw new InvalidWaitOperationError(`the actor must be a name of 1 to ${MAX_ACTOR_LENGTH} printable characters, got ${JSON.stringify(actor.slice(0, 40))}`);
  }
  return name;
}

interface LockedWait {
  classpath: string;
  kwargs: JsonObject;
  now: Date;
  tasks: WaitingTask[];
}

/** Locks the trigger row, then its deferred task instances; throws when there is no such trigger or nothing waits on it. */
async function lockPendingWait(trx: Db, triggerId: number): Promise<LockedWait> {
  const { rows } = await sql<{ classpath: string; kwargs: string | JsonObject; now: Date }>`
    SELECT classpath, kwargs, clock_timestamp() AS now FROM trigger WHERE id = ${triggerId} FOR UPDATE`.execute(trx);
  const trigger = rows[0];
  if (!trigger) throw new WaitNotFoundError(triggerId);
  const tasks = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number; try_number: number; trigger_timeout: Date | null }>`
    SELECT dag_id, run_id, task_id, map_index, try_number, trigger_timeout FROM task_instance
    WHERE trigger_id = ${triggerId} AND state = 'deferred'
    ORDER BY dag_id, run_id, task_id, map_index
    FOR UPDATE`.execute(trx);
  if (tasks.rows.length === 0) throw new WaitNotPendingError(triggerId);
  return {
    classpath: trigger.classpath,
    kwargs: tryDecodeTriggerKwargs(trigger.kwargs, `trigger ${triggerId}`).kwargs,
    now: trigger.now,
    tasks: tasks.rows.map((r) => ({ ...rowKey(r), tryNumber: r.try_number, triggerTimeout: r.trigger_timeout })),
  };
}

/**
 * The event an operator's fire stores: `{ firedBy, firedAt }`, and for a time trigger its usual
 * payload's `moment` too (`{ moment, firedAt, firedBy }`, a DateTimeTrigger event with who fired it).
 * Other kinds' usual payloads describe what the wait found (files, a response), which a fire by hand
 * did not find, so they carry only who and when.
 */
export function firePayload(classpath: string, kwargs: JsonObject, actor: string, firedAt: Date): JsonObject {
  const target = describeWait(classpath, kwargs);
  const who = { firedBy: actor, firedAt: firedAt.toISOString() };
  return target.kind === 'time' ? { moment: target.dueAt, ...who } : who;
}

/**
 * Fires a pending wait now: its task instances resume as if the trigger had fired, through the
 * triggerer's own fenced event write (`submitTriggerOutcomes`), with the payload of `firePayload`.
 * The trigger row is deleted and triggerers are told to look, so the one running it cancels it.
 */
export async function fireWait(db: Db, triggerId: number, actor: string): Promise<FiredWait> {
  const id = checkedId(triggerId);
  const by = checkedActor(actor);
  return db.transaction().execute(async (trx) => {
    const wait = await lockPendingWait(trx, id);
    const payload = firePayload(wait.classpath, wait.kwargs, by, wait.now);
    // The event write accepts an outcome only from the trigger's owner; under the row lock the
    // operator becomes the owner for the rest of this transaction (the row is deleted below).
    await sql`UPDATE trigger SET triggerer_id = ${OPERATOR_FENCE} WHERE id = ${id}`.execute(trx);
    const written = await submitTriggerOutcomes(trx, OPERATOR_FENCE, [{ triggerId: id, kind: 'event', payload }]);
    if (written.resumed !== wait.tasks.length) {
      throw new Error(`firing trigger ${id} resumed ${written.resumed} task instances, expected ${wait.tasks.length}: nothing was changed`);
    }
    await sql`DELETE FROM trigger WHERE id = ${id}`.execute(trx);
    await notify(trx, Channels.trigger, 'cancel');
    return { triggerId: id, actor: by, firedAt: wait.now, payload, resumed: wait.tasks };
  });
}

/**
 * Cancels a pending wait: its task instances' tries fail with `cancelled by ACTOR` the way a trigger
 * timeout fails them — back to `scheduled` with `FAIL_METHOD`, so a worker raises the error in the
 * task (TaskDeferralError) and the usual failure handling applies: retries, callbacks, the run's
 * state. The trigger row is deleted and triggerers are told to look, so the one running it cancels it.
 */
export async function cancelWait(db: Db, triggerId: number, actor: string): Promise<CancelledWait> {
  const id = checkedId(triggerId);
  const by = checkedActor(actor);
  const error = `cancelled by ${by}`;
  return db.transaction().execute(async (trx) => {
    const wait = await lockPendingWait(trx, id);
    await sql`
      UPDATE task_instance SET
        state = 'scheduled',
        trigger_id = NULL,
        next_method = ${FAIL_METHOD}::text,
        next_kwargs = jsonb_build_object('error', ${error}::text, 'cancelledBy', ${by}::text),
        scheduled_at = clock_timestamp(),
        updated_at = now()
      WHERE trigger_id = ${id} AND state = 'deferred'`.execute(trx);
    await sql`DELETE FROM trigger WHERE id = ${id}`.execute(trx);
    await notify(trx, Channels.ti, 'resumed');
    await notify(trx, Channels.trigger, 'cancel');
    return { triggerId: id, actor: by, error, failed: wait.tasks };
  });
}

/**
 * Moves a pending wait's timeout: to `until`, or `by` later than it is. The new moment must be in
 * the future (database clock); it may pass the task's executionTimeout, which only bounds the
 * timeout a deferral sets. The timeout sweepers re-read the earliest deadline when they wake, and
 * the NOTIFY wakes them at once in case the new one is earlier.
 */
export async function extendWait(db: Db, triggerId: number, actor: string, extension: WaitExtension): Promise<ExtendedWait> {
  const id = checkedId(triggerId);
  const by = checkedActor(actor);
  if ('until' in extension && !Number.isFinite(extension.until.getTime())) throw new InvalidWaitOperationError('until is not a valid date');
  let byMs = 0;
  if ('by' in extension) {
    try {
      byMs = toDuration(extension.by, 'by').toMillis();
    } catch (error) {
      throw new InvalidWaitOperationError((error as Error).message, { cause: error });
    }
    if (!(byMs > 0)) throw new InvalidWaitOperationError(`by must be a duration longer than zero, got ${JSON.stringify(extension.by)}`);
  }
  return db.transaction().execute(async (trx) => {
    const wait = await lockPendingWait(trx, id);
    let until: Date;
    if ('until' in extension) {
      until = extension.until;
    } else {
      const current = wait.tasks[0]?.triggerTimeout ?? null;
      if (current === null) {
        throw new InvalidWaitOperationError(`trigger ${id} has no timeout to extend (it waits until it fires): set one with --until / { until }`);
      }
      until = new Date(current.getTime() + byMs);
    }
    if (until.getTime() <= wait.now.getTime()) {
      throw new InvalidWaitOperationError(`the new timeout of trigger ${id}, ${until.toISOString()}, is not in the future (it is ${wait.now.toISOString()}): choose a later moment`);
    }
    await sql`
      UPDATE task_instance SET trigger_timeout = ${until}::timestamptz, updated_at = now()
      WHERE trigger_id = ${id} AND state = 'deferred'`.execute(trx);
    await notify(trx, Channels.trigger, 'new');
    return { triggerId: id, actor: by, triggerTimeout: until, tasks: wait.tasks };
  });
}
