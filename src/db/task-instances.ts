import { sql } from 'kysely';
import type { JsonObject } from '../sdk/json.ts';
import type { Db } from './database.ts';
import { Channels, FAIL_METHOD, notify, pgNotify } from './protocol.ts';
import { mapIndexOf, rowKey, type TaskInstanceKey, type TaskInstanceRow, type TaskInstanceState } from './schema.ts';
import { prevSuccessJoin, runInfoColumns, splitRunInfo, type RunInfoColumns, type TryRunInfo } from './run-info.ts';
import { deleteTriggersIfUnused } from './triggers.ts';

export interface TaskInstanceSpec {
  taskId: string;
  maxTries: number;
  priorityWeight: number;
  queue: string;
  /** @default 'default_pool' (the column's default) */
  pool?: string;
  /** @default 1 */
  poolSlots?: number;
  /** @default -1 (unmapped) */
  mapIndex?: number;
  /** A mapped task expanded to nothing is created `skipped` (Airflow's). @default null (undecided) */
  state?: 'skipped' | null;
  /** The task's `maxActiveTisPerDag`. @default null (no limit) */
  maxActiveTisPerDag?: number | null;
}

/** The primary-key columns of a task instance (and of its XComs), for `eb.and(...)`. */
export function keyColumns(key: TaskInstanceKey): { dag_id: string; run_id: string; task_id: string; map_index: number } {
  return { dag_id: key.dagId, run_id: key.runId, task_id: key.taskId, map_index: mapIndexOf(key) };
}

export async function createTaskInstances(db: Db, dagId: string, runId: string, specs: readonly TaskInstanceSpec[]): Promise<void> {
  if (specs.length === 0) return;
  await db
    .insertInto('task_instance')
    .values(
      specs.map((s) => ({
        dag_id: dagId,
        run_id: runId,
        task_id: s.taskId,
        map_index: s.mapIndex ?? -1,
        max_active_tis_per_dag: s.maxActiveTisPerDag ?? null,
        state: s.state ?? null,
        ...(s.state === 'skipped' && { start_date: new Date(), end_date: new Date() }),
        max_tries: s.maxTries,
        priority_weight: s.priorityWeight,
        queue: s.queue,
        pool: s.pool,
        pool_slots: s.poolSlots,
      })),
    )
    .onConflict((oc) => oc.columns(['dag_id', 'run_id', 'task_id', 'map_index']).doNothing())
    .execute();
}

export async function getTaskInstance(db: Db, key: TaskInstanceKey): Promise<TaskInstanceRow | undefined> {
  return db.selectFrom('task_instance').selectAll().where((eb) => eb.and(keyColumns(key))).executeTakeFirst();
}

export async function listTaskInstances(db: Db, dagId: string, runId: string): Promise<TaskInstanceRow[]> {
  return db.selectFrom('task_instance').selectAll().where('dag_id', '=', dagId).where('run_id', '=', runId).orderBy('task_id').orderBy('map_index').execute();
}

export interface StartedTry {
  row: TaskInstanceRow;
  /** True when this run continues a deferred or rescheduled try (same try number). */
  resuming: boolean;
  /** The run's conf, dates and previous success, read in the same statement. */
  run: TryRunInfo;
}

export class TaskInstanceStateError extends Error {
  override name = 'TaskInstanceStateError';
}

/**
 * A `tsflow worker` taking a graphile-worker job claims its try in the start write itself: the task
 * instance must still be queued for that very try, and it is marked as this worker's as it starts.
 */
export interface TryClaim {
  /** The worker's job id, recorded on the row (a dead worker's tries are found by it). */
  workerJobId: number;
  /** The try the job runs (the stored try + 1 for a fresh start, the same for a resume). */
  tryNumber: number;
}

/**
 * The job's try is no longer queued — it ran, was cleared, failed or revoked since the job was
 * added — so the job is stale and must run nothing.
 */
export class StaleTryError extends TaskInstanceStateError {
  override name = 'StaleTryError';
}

/**
 * Marks a task instance running for one try, in ONE statement (one round trip; it runs before every
 * task and every resume). A fresh try increments try_number and sets start_date; a resume
 * (next_method set) keeps both. Returns the run's conf and logical date with it. With a `claim`, the
 * row must be queued for the claimed try, and records the claiming worker (StaleTryError if not):
 * the row lock also waits out a scheduler failing this try at the same moment, so the two never
 * both win.
 */
export async function startTry(
  db: Db,
  key: TaskInstanceKey,
  who: { hostname: string; pid: number },
  allowed: readonly TaskInstanceState[] = ['queued', 'scheduled'],
  claim?: TryClaim,
): Promise<StartedTry> {
  const claimTry = claim?.tryNumber ?? null;
  const { rows } = await sql<TaskInstanceRow & RunInfoColumns>`
    WITH started AS (
      UPDATE task_instance SET
        state = 'running',
        try_number = CASE WHEN next_method IS NULL THEN try_number + 1 ELSE try_number END,
        start_date = CASE WHEN next_method IS NOT NULL AND start_date IS NOT NULL THEN start_date ELSE clock_timestamp() END,
        error = CASE WHEN next_method IS NULL THEN NULL ELSE error END,
        end_date = NULL, hostname = ${who.hostname}, pid = ${who.pid}, last_heartbeat_at = now(), updated_at = now(),
        worker_job_id = coalesce(${claim?.workerJobId ?? null}::int, worker_job_id)
      WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND task_id = ${key.taskId} AND map_index = ${mapIndexOf(key)} AND state = ANY(${[...allowed]}::text[])
        AND (${claimTry}::int IS NULL
          OR (state = 'queued' AND (CASE WHEN next_method IS NULL THEN try_number + 1 ELSE try_number END) = ${claimTry}::int))
      RETURNING *
    )
    SELECT s.*, ${runInfoColumns}
    FROM started s JOIN dag_run r ON r.dag_id = s.dag_id AND r.run_id = s.run_id ${prevSuccessJoin}`.execute(db);
  const started = rows[0];
  if (started) {
    const [row, run] = splitRunInfo(started);
    return { row, resuming: row.next_method !== null, run };
  }
  const name = `${key.dagId}.${key.taskId}${mapIndexOf(key) >= 0 ? `[${mapIndexOf(key)}]` : ''}`;
  if (claim) throw new StaleTryError(`task instance ${name} in run '${key.runId}' is no longer queued for try ${claim.tryNumber}`);
  const current = await getTaskInstance(db, key);
  if (!current) {
    throw new TaskInstanceStateError(
      `no task instance ${name} in run '${key.runId}': trigger the DAG first (tsflow dags trigger ${key.dagId})`,
    );
  }
  throw new TaskInstanceStateError(
    `task instance ${name} in run '${key.runId}' is ${current.state ?? 'not scheduled yet'}, ` +
      `not ${allowed.join(' or ')}: clear it (tsflow tasks clear ${key.dagId} ${key.runId} --task ${key.taskId}) to run it again`,
  );
}

/**
 * The running try's heartbeat: `last_heartbeat_at = now()` (database time), fenced on the try still
 * running. Returns false when it is not (cleared, or failed elsewhere as a zombie or by a timeout).
 */
export async function heartbeatTry(db: Db, key: TaskInstanceKey, tryNumber: number): Promise<boolean> {
  const result = await db
    .updateTable('task_instance')
    .set({ last_heartbeat_at: sql<Date>`now()` })
    .where((eb) => eb.and({ ...keyColumns(key), state: 'running', try_number: tryNumber }))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export interface TryOutcome {
  state: Extract<TaskInstanceState, 'success' | 'failed' | 'up_for_retry' | 'skipped' | 'up_for_reschedule'>;
  error?: string | null;
  /** up_for_retry / up_for_reschedule: when to schedule again. */
  readyAt?: Date | null;
  /** up_for_reschedule keeps the try going: the next run resumes at `execute`. */
  nextMethod?: string | null;
  /** An XCom to store with a success, in the same transaction. */
  returnValue?: string | undefined;
  /**
   * A branching task's success: task instances of the same run to set `skipped` with it, those not
   * started yet (no state, or scheduled and not queued).
   */
  skipTaskIds?: readonly string[] | undefined;
}

/**
 * Ends a running try — its state, its XCom and a NOTIFY for the scheduler — in ONE statement, so all
 * of it or none lands. Fenced: it only lands if the task instance is still `running` this try (it may
 * have been cleared or failed by a timeout meanwhile). Returns whether it landed.
 */
export async function finishTry(db: Db, key: TaskInstanceKey, tryNumber: number, outcome: TryOutcome): Promise<boolean> {
  const finished = outcome.state !== 'up_for_reschedule';
  const nextMethod = outcome.nextMethod ?? null;
  const { rows } = await sql<{ landed: number }>`
    WITH ended AS (
      UPDATE task_instance SET
        state = ${outcome.state},
        error = ${outcome.error ?? null},
        ready_at = ${outcome.readyAt ?? null}::timestamptz,
        end_date = CASE WHEN ${finished} THEN clock_timestamp() END,
        next_method = ${nextMethod}::text,
        next_kwargs = CASE WHEN ${nextMethod}::text IS NOT NULL THEN '{}'::jsonb END,
        trigger_timeout = NULL, hostname = NULL, pid = NULL, updated_at = now()
      WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND task_id = ${key.taskId} AND map_index = ${mapIndexOf(key)}
        AND state = 'running' AND try_number = ${tryNumber}
      RETURNING dag_id, run_id, task_id, map_index
    ),
    stored AS (
      INSERT INTO xcom (dag_id, run_id, task_id, map_index, key, value)
      SELECT dag_id, run_id, task_id, map_index, 'return_value', ${outcome.returnValue ?? null}::jsonb FROM ended
      WHERE ${outcome.returnValue ?? null}::text IS NOT NULL
      ON CONFLICT (dag_id, run_id, task_id, map_index, key) DO UPDATE SET value = excluded.value
      RETURNING 1
    ),
    skipped AS (
      UPDATE task_instance s SET state = 'skipped', start_date = coalesce(s.start_date, clock_timestamp()),
        end_date = clock_timestamp(), updated_at = now()
      FROM ended e, unnest(${[...(outcome.skipTaskIds ?? [])]}::text[]) AS k(task_id)
      WHERE s.dag_id = e.dag_id AND s.run_id = e.run_id AND s.task_id = k.task_id AND (s.state IS NULL OR s.state = 'scheduled')
      RETURNING 1
    ),
    notified AS (
      SELECT ${pgNotify(Channels.ti, outcome.state)} FROM ended
    )
    SELECT (SELECT count(*) FROM ended)::int AS landed, (SELECT count(*) FROM stored) AS stored,
      (SELECT count(*) FROM skipped) AS skipped, (SELECT count(*) FROM notified) AS notified`.execute(db);
  return (rows[0]?.landed ?? 0) > 0;
}

/** A scheduled task instance about to start a new try, with what building its trigger needs. */
export interface ScheduledNewTry {
  key: TaskInstanceKey;
  /** The try number so far; the new try is one more. */
  tryNumber: number;
  conf: JsonObject;
  logicalDate: Date;
}

/**
 * The scheduled task instances of running runs, among `tasks`, that start a new try (no
 * next_method: not a resume after a trigger or a reschedule). The candidates for start_from_trigger.
 */
export async function listScheduledNewTries(db: Db, tasks: readonly { dagId: string; taskId: string }[]): Promise<ScheduledNewTry[]> {
  if (tasks.length === 0) return [];
  const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number; try_number: number; conf: JsonObject; logical_date: Date }>`
    SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, r.conf, r.logical_date
    FROM task_instance ti
    JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id AND r.state = 'running'
    JOIN unnest(${tasks.map((t) => t.dagId)}::text[], ${tasks.map((t) => t.taskId)}::text[]) AS t(dag_id, task_id)
      ON t.dag_id = ti.dag_id AND t.task_id = ti.task_id
    WHERE ti.state = 'scheduled' AND ti.next_method IS NULL
    ORDER BY ti.priority_weight DESC, ti.scheduled_at`.execute(db);
  return rows.map((r) => ({
    key: rowKey(r),
    tryNumber: r.try_number,
    conf: r.conf,
    logicalDate: r.logical_date,
  }));
}

/**
 * Sends deferred task instances whose trigger_timeout has passed to `scheduled` with `FAIL_METHOD` and
 * a timeout error, deletes their triggers (skipping any locked by an event write), and wakes the
 * schedulers and triggerers. SKIP LOCKED on the task instances: sweepers never block each other.
 */
export async function sweepTriggerTimeouts(db: Db, limit = 10_000): Promise<TaskInstanceKey[]> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number; trigger_id: number | null }>`
      WITH expired AS (
        SELECT dag_id, run_id, task_id, map_index, trigger_id, trigger_timeout FROM task_instance
        WHERE state = 'deferred' AND trigger_timeout <= clock_timestamp()
        ORDER BY trigger_timeout
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      )
      UPDATE task_instance ti SET
        state = 'scheduled',
        trigger_id = NULL,
        next_method = ${FAIL_METHOD}::text,
        next_kwargs = jsonb_build_object(
          'error', 'Trigger timeout: the trigger did not fire before ' || to_char(e.trigger_timeout AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
          'timeout', true),
        scheduled_at = clock_timestamp(),
        updated_at = now()
      FROM expired e
      WHERE ti.dag_id = e.dag_id AND ti.run_id = e.run_id AND ti.task_id = e.task_id AND ti.map_index = e.map_index
      RETURNING ti.dag_id, ti.run_id, ti.task_id, ti.map_index, e.trigger_id`.execute(trx);
    if (rows.length === 0) return [];
    await deleteTriggersIfUnused(trx, rows.flatMap((r) => (r.trigger_id === null ? [] : [r.trigger_id])));
    await notify(trx, Channels.ti, 'timeout');
    await notify(trx, Channels.trigger, 'cancel');
    return rows.map(rowKey);
  });
}

/**
 * Milliseconds until the next trigger timeout (the timeout sweeper's business) or the next retry or
 * reschedule (the scheduler's), by the database's clock, so a skewed host clock cannot make a loop
 * spin or oversleep. Null when nothing is pending; negative when already due.
 */
export async function msUntilNextDue(db: Db, what: 'trigger-timeouts' | 'retries'): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    SELECT (extract(epoch FROM (CASE WHEN ${what} = 'trigger-timeouts'
      THEN (SELECT min(trigger_timeout) FROM task_instance WHERE state = 'deferred')
      ELSE (SELECT min(ready_at) FROM task_instance WHERE state IN ('up_for_retry', 'up_for_reschedule')) END
    - clock_timestamp())) * 1000)::float8 AS ms`.execute(db);
  return rows[0]?.ms ?? null;
}
