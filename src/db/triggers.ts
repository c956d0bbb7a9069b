import { sql } from 'kysely';
import type { JsonObject, JsonValue } from '../sdk/json.ts';
import type { Db } from './database.ts';
import { Channels } from './notify.ts';
import type { TaskInstanceKey } from './schema.ts';

/*
 * Lock order, everywhere: trigger rows before task_instance rows. Code that holds task_instance locks
 * and then touches trigger rows (timeout sweep, clear) takes them with SKIP LOCKED and never waits,
 * so event submission and the timeout sweep cannot deadlock (Airflow #21817, #23639).
 */

/** A trigger row as the triggerer runs it, with the task it will resume. */
export interface ClaimedTrigger {
  id: number;
  classpath: string;
  kwargs: JsonObject;
  createdAt: Date;
  task: TaskInstanceKey | undefined;
}

export interface NewTrigger {
  classpath: string;
  kwargs: JsonObject;
  priorityWeight: number;
}

/** Inserts a trigger row; called inside the defer transaction. */
export async function insertTrigger(db: Db, trigger: NewTrigger): Promise<number> {
  const row = await db
    .insertInto('trigger')
    .values({ classpath: trigger.classpath, kwargs: JSON.stringify(trigger.kwargs), priority_weight: trigger.priorityWeight })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Unassigns the triggers of dead triggerers (heartbeat older than the threshold, or ended) so any
 * triggerer can claim them. A live triggerer's triggers are never touched. Returns how many moved.
 */
export async function unassignDeadTriggerers(db: Db, selfJobId: number, thresholdMs: number): Promise<number> {
  const result = await sql`
    UPDATE trigger SET triggerer_id = NULL
    WHERE triggerer_id IN (
      SELECT j.id FROM job j
      WHERE j.job_type = 'triggerer' AND j.id <> ${selfJobId}
        AND (j.state <> 'running' OR j.latest_heartbeat < now() - make_interval(secs => ${thresholdMs / 1000}))
        AND EXISTS (SELECT 1 FROM trigger t WHERE t.triggerer_id = j.id))`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/**
 * Claims up to `limit` unowned triggers for `jobId`, oldest first, then by task priority.
 * FOR UPDATE SKIP LOCKED: concurrent claimers take disjoint rows and never wait for each other.
 */
export async function claimTriggers(db: Db, jobId: number, limit: number): Promise<ClaimedTrigger[]> {
  if (limit <= 0) return [];
  const { rows } = await sql<{
    id: number;
    classpath: string;
    kwargs: JsonObject;
    created_at: Date;
    dag_id: string | null;
    run_id: string | null;
    task_id: string | null;
  }>`
    WITH claimed AS (
      UPDATE trigger t SET triggerer_id = ${jobId}
      FROM (
        SELECT id FROM trigger WHERE triggerer_id IS NULL
        ORDER BY created_at, priority_weight DESC, id
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED
      ) c
      WHERE t.id = c.id
      RETURNING t.id, t.classpath, t.kwargs, t.created_at
    )
    SELECT c.*, ti.dag_id, ti.run_id, ti.task_id
    FROM claimed c
    LEFT JOIN task_instance ti ON ti.trigger_id = c.id AND ti.state = 'deferred'
    ORDER BY c.created_at, c.id`.execute(db);
  const byId = new Map<number, ClaimedTrigger>();
  for (const row of rows) {
    if (byId.has(row.id)) continue;
    byId.set(row.id, {
      id: row.id,
      classpath: row.classpath,
      kwargs: row.kwargs,
      createdAt: row.created_at,
      task: row.dag_id && row.run_id && row.task_id ? { dagId: row.dag_id, runId: row.run_id, taskId: row.task_id } : undefined,
    });
  }
  return [...byId.values()];
}

/** The ids of the triggers `jobId` owns now. */
export async function ownedTriggerIds(db: Db, jobId: number): Promise<Set<number>> {
  const rows = await db.selectFrom('trigger').select('id').where('triggerer_id', '=', jobId).execute();
  return new Set(rows.map((r) => r.id));
}

export interface TriggerOutcome {
  triggerId: number;
  kind: 'event' | 'failure';
  /** The event payload, or `{ error, traceback }` for a failure. */
  payload: JsonValue;
}

export interface SubmitResult {
  /** Triggers whose write passed the fence (still owned by the submitter); their rows are deleted. */
  fenced: Set<number>;
  /** The task instances that went back to `scheduled`. */
  resumed: (TaskInstanceKey & { triggerId: number })[];
}

/**
 * Writes a batch of events and failures in ONE statement, fenced: only triggers still owned by
 * `jobId` count (their rows are locked, then deleted as spent); only task instances still `deferred`
 * resume. A stale owner's write and a duplicate event change nothing. One NOTIFY per batch.
 */
export async function submitTriggerOutcomes(db: Db, jobId: number, outcomes: readonly TriggerOutcome[]): Promise<SubmitResult> {
  if (outcomes.length === 0) return { fenced: new Set(), resumed: [] };
  const ids = outcomes.map((o) => o.triggerId);
  const kinds = outcomes.map((o) => o.kind);
  const payloads = outcomes.map((o) => JSON.stringify(o.payload));
  const { rows } = await sql<{ fenced: number[]; resumed: { trigger_id: number; dag_id: string; run_id: string; task_id: string }[] }>`
    WITH input AS (
      SELECT * FROM unnest(${ids}::bigint[], ${kinds}::text[], ${payloads}::jsonb[]) AS i(trigger_id, kind, payload)
    ),
    owned AS (
      SELECT t.id FROM trigger t
      WHERE t.id IN (SELECT trigger_id FROM input) AND t.triggerer_id = ${jobId}
      FOR UPDATE
    ),
    resumed AS (
      UPDATE task_instance ti SET
        state = 'scheduled',
        trigger_id = NULL,
        scheduled_at = clock_timestamp(),
        updated_at = clock_timestamp(),
        next_method = CASE WHEN i.kind = 'failure' THEN '__fail__' ELSE ti.next_method END,
        next_kwargs = CASE WHEN i.kind = 'failure' THEN i.payload
                           ELSE coalesce(ti.next_kwargs, '{}'::jsonb) || jsonb_build_object('event', i.payload) END
      FROM input i
      WHERE i.trigger_id IN (SELECT id FROM owned) AND ti.trigger_id = i.trigger_id AND ti.state = 'deferred'
      RETURNING i.trigger_id, ti.dag_id, ti.run_id, ti.task_id
    ),
    spent AS (
      DELETE FROM trigger t USING owned o WHERE t.id = o.id RETURNING t.id
    ),
    notified AS (
      SELECT pg_notify(${Channels.ti}, 'resumed') FROM (SELECT 1 FROM resumed LIMIT 1) one
    )
    SELECT
      (SELECT coalesce(json_agg(id), '[]') FROM spent) AS fenced,
      (SELECT coalesce(json_agg(resumed), '[]') FROM resumed) AS resumed,
      (SELECT count(*) FROM notified) AS notified`.execute(db);
  const row = rows[0];
  return {
    fenced: new Set(row?.fenced ?? []),
    resumed: (row?.resumed ?? []).map((r) => ({ triggerId: r.trigger_id, dagId: r.dag_id, runId: r.run_id, taskId: r.task_id })),
  };
}

/** Gives up every trigger `jobId` owns (graceful shutdown) and wakes the other triggerers. */
export async function releaseTriggers(db: Db, jobId: number): Promise<number> {
  const { rows } = await sql<{ released: number }>`
    WITH released AS (
      UPDATE trigger SET triggerer_id = NULL WHERE triggerer_id = ${jobId} RETURNING id
    )
    SELECT count(*)::int AS released,
      (SELECT count(*) FROM (SELECT pg_notify(${Channels.trigger}, 'released') FROM (SELECT 1 FROM released LIMIT 1) one) n) AS notified
    FROM released`.execute(db);
  return rows[0]?.released ?? 0;
}

/**
 * Deletes triggers no deferred task instance waits on any more (its task was cleared, timed out or
 * deleted). Rows locked by a concurrent event write are skipped, not waited for. Returns the ids.
 */
export async function deleteUnusedTriggers(db: Db): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    DELETE FROM trigger WHERE id IN (
      SELECT t.id FROM trigger t
      WHERE NOT EXISTS (SELECT 1 FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = 'deferred')
      FOR UPDATE SKIP LOCKED)
    RETURNING id`.execute(db);
  return rows.map((r) => r.id);
}

/** Deletes the given triggers if no deferred task instance needs them; never waits on a lock. */
export async function deleteTriggersIfUnused(db: Db, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    DELETE FROM trigger WHERE id IN (
      SELECT t.id FROM trigger t
      WHERE t.id = ANY(${[...ids]}::bigint[])
        AND NOT EXISTS (SELECT 1 FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = 'deferred')
      FOR UPDATE SKIP LOCKED)`.execute(db);
}

export interface TriggerListing {
  id: number;
  classpath: string;
  kwargs: JsonObject;
  createdAt: Date;
  triggererId: number | null;
  tasks: TaskInstanceKey[];
}

export async function listTriggers(db: Db): Promise<TriggerListing[]> {
  const { rows } = await sql<{
    id: number;
    classpath: string;
    kwargs: JsonObject;
    created_at: Date;
    triggerer_id: number | null;
    tasks: TaskInstanceKey[];
  }>`
    SELECT t.id, t.classpath, t.kwargs, t.created_at, t.triggerer_id,
      coalesce((SELECT json_agg(json_build_object('dagId', ti.dag_id, 'runId', ti.run_id, 'taskId', ti.task_id))
                FROM task_instance ti WHERE ti.trigger_id = t.id), '[]') AS tasks
    FROM trigger t ORDER BY t.created_at, t.id`.execute(db);
  return rows.map((r) => ({
    id: r.id,
    classpath: r.classpath,
    kwargs: r.kwargs,
    createdAt: r.created_at,
    triggererId: r.triggerer_id,
    tasks: r.tasks,
  }));
}
