import { sql } from 'kysely';
import type pg from 'pg';
import type { JsonObject, JsonValue } from '../sdk/json.ts';
import type { Db } from './database.ts';
import { tryDecodeTriggerKwargs } from './trigger-kwargs.ts';
import { Channels, EVENT_KEY, FAIL_METHOD, pgNotify, type PayloadOf } from './protocol.ts';
import { rowKey, type TaskInstanceKey } from './schema.ts';

/*
 * Locks: event submission locks only task_instance rows (the trigger ownership check reads); spent
 * trigger rows are deleted in a later statement that holds no task_instance lock. Code that holds
 * task_instance locks and then touches trigger rows (timeout sweep, clear) takes them with SKIP
 * LOCKED and never waits. So event submission, the timeout sweep and clear cannot deadlock
 * (Airflow #21817, #23639).
 */

/** A trigger row as the triggerer runs it, with the task it will resume. */
export interface ClaimedTrigger {
  id: number;
  classpath: string;
  kwargs: JsonObject;
  /** Why the stored kwargs could not be decoded (then `kwargs` is empty): the triggerer fails the trigger with it. */
  kwargsError?: string;
  createdAt: Date;
  task: TaskInstanceKey | undefined;
}

export interface NewTrigger {
  classpath: string;
  kwargs: JsonObject;
  priorityWeight: number;
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

const CLAIM = `
  WITH claimed AS (
    UPDATE trigger t SET triggerer_id = $1::bigint
    FROM (
      SELECT id FROM trigger WHERE triggerer_id IS NULL
      ORDER BY created_at, priority_weight DESC, id
      LIMIT $2::int
      FOR UPDATE SKIP LOCKED
    ) c
    WHERE t.id = c.id
    RETURNING t.id, t.classpath, t.kwargs, t.created_at
  )
  SELECT c.*, ti.dag_id, ti.run_id, ti.task_id, ti.map_index
  FROM claimed c
  LEFT JOIN task_instance ti ON ti.trigger_id = c.id AND ti.state = 'deferred'
  ORDER BY c.created_at, c.id`;

/**
 * Claims up to `limit` unowned triggers for `jobId`, oldest first, then by task priority.
 * FOR UPDATE SKIP LOCKED: concurrent claimers take disjoint rows and never wait for each other.
 */
export async function claimTriggers(pool: pg.Pool, jobId: number, limit: number): Promise<ClaimedTrigger[]> {
  if (limit <= 0) return [];
  // A named prepared statement: it runs on every defer's path (NOTIFY → claim), so it skips parsing
  // and planning. Its plan does not depend on statistics: the partial unassigned index, then
  // lookups by primary key and by ti_trigger_idx.
  const { rows } = await pool.query<{
    id: number;
    classpath: string;
    kwargs: string;
    created_at: Date;
    dag_id: string | null;
    run_id: string | null;
    task_id: string | null;
    map_index: number | null;
  }>({ name: 'tsflow_claim_triggers', text: CLAIM, values: [jobId, limit] });
  const byId = new Map<number, ClaimedTrigger>();
  // Many triggers share a classpath, DAG and run: keep one copy of each string, not one per row.
  const strings = new Map<string, string>();
  const intern = (value: string): string => {
    const known = strings.get(value);
    if (known !== undefined) return known;
    strings.set(value, value);
    return value;
  };
  for (const row of rows) {
    if (byId.has(row.id)) continue;
    byId.set(row.id, {
      id: row.id,
      classpath: intern(row.classpath),
      ...tryDecodeTriggerKwargs(row.kwargs, `trigger ${row.id}`),
      createdAt: row.created_at,
      task: row.dag_id && row.run_id && row.task_id ? rowKey({ dag_id: intern(row.dag_id), run_id: intern(row.run_id), task_id: row.task_id, map_index: row.map_index ?? -1 }) : undefined,
    });
  }
  return [...byId.values()];
}

/** How many trigger rows `jobId` owns now (an index-only count). */
export async function countOwnedTriggers(db: Db, jobId: number): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM trigger WHERE triggerer_id = ${jobId}`.execute(db);
  return rows[0]?.n ?? 0;
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
  /**
   * A time trigger's event: how late it fired against its due moment (ms). Stored with the event
   * (`trigger_fired_at`, `trigger_lateness_ms`) for the Waits page's lateness plot.
   */
  latenessMs?: number | undefined;
}

export interface SubmitResult {
  /** Triggers whose outcome passed the fence and was stored (their task instance resumed, or had already left `deferred`). */
  applied: Set<number>;
  /** How many task instances went back to `scheduled`. */
  resumed: number;
}

/**
 * Writes a batch of events and failures in ONE statement: the task instances of triggers that
 * `jobId` still owns, and that are still `deferred`, go to `scheduled` with the event (or the
 * failure) — one NOTIFY per batch. Exactly-once rests on the task instance row: its update takes the
 * row lock and re-checks `deferred`, so a duplicate event, or a second owner during a failover,
 * changes nothing. The ownership check refuses a stale owner whose claim was taken before the
 * statement began. Spent trigger rows are deleted afterwards (`deleteSpentTriggers`), off the
 * latency path of a burst.
 *
 * Its cost follows the batch, not the waits held: both tables are reached by `= ANY(ids)` on
 * their indexes (trigger_pkey, ti_trigger_idx), which the planner costs from the array it is given,
 * so one event reads one trigger and one task instance whether 1,000 or 100,000 wait, and 10,000
 * events read 10,000 of each. (The batch used to arrive as a JSON document joined to both tables:
 * the planner took `jsonb_array_elements` for 100 rows whatever it held, and with 10,000 waits held
 * scanned both tables for every event.) Migration 0004 keeps the timeout index from standing in
 * for `state = 'deferred'`. Payloads travel as one JSON array read by position, so no row is
 * escaped into an array literal. `test/event-write.test.ts` checks the tuples read.
 */
export async function submitTriggerOutcomes(db: Db, jobId: number, outcomes: readonly TriggerOutcome[]): Promise<SubmitResult> {
  if (outcomes.length === 0) return { applied: new Set(), resumed: 0 };
  const statement = outcomes.length < LARGE_BATCH ? lookupStatement(jobId, outcomes) : scanStatement(jobId, outcomes);
  const { rows } = await statement.execute(db);
  const foreign = rows[0]?.foreign ?? [];
  const applied = new Set<number>(outcomes.map((o) => o.triggerId));
  for (const id of foreign) applied.delete(id);
  return { applied, resumed: rows[0]?.resumed ?? 0 };
}

/**
 * From this many outcomes on, the batch is written with `scanStatement`. Measured in the burst
 * benchmark: the lookup statement, which wins for a few events among many waits held, made a burst
 * of 10,000 simultaneous events three times slower (p99 554-807 ms against 184-268 ms).
 */
const LARGE_BATCH = 100;

/**
 * The assignments that resume a task instance from an `input` row `i` (trigger_id, failure,
 * payload, lateness): an event is stored at `next_kwargs.event`, a failure replaces `next_kwargs` and resumes
 * at `__fail__`. Shared by both batch statements.
 */
const RESUME_FROM_INPUT = sql`
        state = 'scheduled',
        trigger_id = NULL,
        scheduled_at = clock_timestamp(),
        updated_at = clock_timestamp(),
        next_method = CASE WHEN i.failure THEN ${FAIL_METHOD}::text ELSE ti.next_method END,
        next_kwargs = CASE WHEN i.failure THEN i.payload
                           ELSE coalesce(ti.next_kwargs, '{}'::jsonb) || jsonb_build_object(${EVENT_KEY}::text, i.payload) END,
        trigger_fired_at = CASE WHEN i.lateness IS NULL THEN ti.trigger_fired_at ELSE clock_timestamp() END,
        trigger_lateness_ms = coalesce(i.lateness, ti.trigger_lateness_ms)`;

/**
 * The batch statements' result row: the refused ids are listed only when some were refused (in the
 * usual batch all are owned, and comparing one count saves the anti-join over the batch).
 */
function reportOutcomes(count: number) {
  return sql`
    SELECT
      CASE WHEN (SELECT count(*) FROM owned) = ${count} THEN '[]'::json
           ELSE (SELECT coalesce(json_agg(i.trigger_id), '[]') FROM input i WHERE i.trigger_id NOT IN (SELECT id FROM owned)) END AS foreign,
      (SELECT count(*)::int FROM resumed) AS resumed,
      (SELECT count(*) FROM notified) AS notified`;
}

/**
 * A few outcomes among many waits: every row is found by id through an index (trigger pkey,
 * ti_trigger_idx), so the cost follows the batch, not the waits held — with 100,000 held, one event
 * costs what it costs with 1,000.
 */
function lookupStatement(jobId: number, outcomes: readonly TriggerOutcome[]) {
  const ids = outcomes.map((o) => o.triggerId);
  const failures = outcomes.map((o) => o.kind === 'failure');
  const payloads = JSON.stringify(outcomes.map((o) => o.payload));
  const lateness = outcomes.map((o) => (o.kind === 'event' ? (o.latenessMs ?? null) : null));
  // The refused ids are listed only when some were refused: in the usual batch all are owned, and
  // comparing one count saves the anti-join over the batch.
  return sql<{ foreign: number[]; resumed: number }>`
    WITH input AS (
      SELECT i.trigger_id, i.failure, (${payloads}::jsonb) -> (i.n::int - 1) AS payload, i.lateness
      FROM unnest(${ids}::bigint[], ${failures}::boolean[], ${lateness}::float8[]) WITH ORDINALITY AS i(trigger_id, failure, lateness, n)
    ),
    -- Materialised, so the owner test is applied to the rows found by id and cannot steer the scan:
    -- planned together, an unanalysed table can make the planner AND trigger_triggerer_idx in and
    -- read every trigger this triggerer owns.
    candidates AS MATERIALIZED (
      SELECT t.id, t.triggerer_id FROM trigger t WHERE t.id = ANY(${ids}::bigint[])
    ),
    owned AS (
      SELECT id FROM candidates WHERE triggerer_id = ${jobId}
    ),
    resumed AS (
      UPDATE task_instance ti SET ${RESUME_FROM_INPUT}
      FROM input i JOIN owned o ON o.id = i.trigger_id
      WHERE ti.trigger_id = ANY(${ids}::bigint[]) AND ti.state = 'deferred' AND ti.trigger_id = i.trigger_id
      RETURNING 1
    ),
    notified AS (
      SELECT ${pgNotify(Channels.ti, 'resumed')} FROM (SELECT 1 FROM resumed LIMIT 1) one
    )
    ${reportOutcomes(outcomes.length)}`;
}

/**
 * A large batch (a burst): the ids come from one JSON document. The planner estimates such input at
 * 100 rows, so with many more waits held it still looks rows up by index, and with a batch about the
 * size of what is held it may scan — which is then the cheaper plan.
 */
function scanStatement(jobId: number, outcomes: readonly TriggerOutcome[]) {
  const input = JSON.stringify(outcomes.map((o) => [o.triggerId, o.kind === 'failure', o.payload, o.kind === 'event' ? (o.latenessMs ?? null) : null]));
  return sql<{ foreign: number[]; resumed: number }>`
    WITH input AS (
      SELECT (e ->> 0)::bigint AS trigger_id, (e ->> 1)::boolean AS failure, e -> 2 AS payload, (e ->> 3)::float8 AS lateness
      FROM jsonb_array_elements(${input}::jsonb) AS e
    ),
    owned AS (
      SELECT t.id FROM trigger t JOIN input i ON t.id = i.trigger_id WHERE t.triggerer_id = ${jobId}
    ),
    resumed AS (
      UPDATE task_instance ti SET ${RESUME_FROM_INPUT}
      FROM input i JOIN owned o ON o.id = i.trigger_id
      WHERE ti.trigger_id = i.trigger_id AND ti.state = 'deferred'
      RETURNING 1
    ),
    notified AS (
      SELECT ${pgNotify(Channels.ti, 'resumed')} FROM (SELECT 1 FROM resumed LIMIT 1) one
    )
    ${reportOutcomes(outcomes.length)}`;
}

/** Deletes trigger rows whose outcome `jobId` stored (set-based; the fence already made them spent). */
export async function deleteSpentTriggers(db: Db, jobId: number, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`DELETE FROM trigger WHERE id = ANY(${[...ids]}::bigint[]) AND triggerer_id = ${jobId}`.execute(db);
}

/** Gives up every trigger `jobId` owns (graceful shutdown) and wakes the other triggerers. */
export async function releaseTriggers(db: Db, jobId: number): Promise<number> {
  const { rows } = await sql<{ released: number }>`
    WITH released AS (
      UPDATE trigger SET triggerer_id = NULL WHERE triggerer_id = ${jobId} RETURNING id
    )
    SELECT count(*)::int AS released,
      (SELECT count(*) FROM (SELECT ${pgNotify(Channels.trigger, 'released')} FROM (SELECT 1 FROM released LIMIT 1) one) n) AS notified
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
  /** Why the kwargs could not be decoded (then `kwargs` is empty). */
  kwargsError?: string;
  createdAt: Date;
  triggererId: number | null;
  tasks: TaskInstanceKey[];
}

export async function listTriggers(db: Db): Promise<TriggerListing[]> {
  const { rows } = await sql<{
    id: number;
    classpath: string;
    kwargs: string;
    created_at: Date;
    triggerer_id: number | null;
    tasks: TaskInstanceKey[];
  }>`
    SELECT t.id, t.classpath, t.kwargs, t.created_at, t.triggerer_id,
      coalesce((SELECT json_agg(json_strip_nulls(json_build_object('dagId', ti.dag_id, 'runId', ti.run_id, 'taskId', ti.task_id,
                  'mapIndex', CASE WHEN ti.map_index >= 0 THEN ti.map_index END)))
                FROM task_instance ti WHERE ti.trigger_id = t.id AND ti.state = 'deferred'), '[]') AS tasks
    FROM trigger t ORDER BY t.created_at, t.id`.execute(db);
  return rows.map((r) => ({
    id: r.id,
    classpath: r.classpath,
    ...tryDecodeTriggerKwargs(r.kwargs, `trigger ${r.id}`),
    createdAt: r.created_at,
    triggererId: r.triggerer_id,
    tasks: r.tasks,
  }));
}

/**
 * Triggers `jobId` owns that it is not running (`runningIds`) and that a deferred task instance still
 * waits on: what a claim left behind when its commit landed but its reply was lost to a dropped
 * connection. The claimer runs them as if it had just claimed them.
 */
export async function ownedButNotRunning(db: Db, jobId: number, runningIds: readonly number[]): Promise<ClaimedTrigger[]> {
  const { rows } = await sql<{ id: number; classpath: string; kwargs: string; created_at: Date; dag_id: string; run_id: string; task_id: string; map_index: number }>`
    SELECT t.id, t.classpath, t.kwargs, t.created_at, ti.dag_id, ti.run_id, ti.task_id, ti.map_index
    FROM trigger t JOIN task_instance ti ON ti.trigger_id = t.id AND ti.state = 'deferred'
    WHERE t.triggerer_id = ${jobId} AND NOT (t.id = ANY(${[...runningIds]}::bigint[]))
    ORDER BY t.created_at, t.id`.execute(db);
  const seen = new Set<number>();
  return rows.flatMap((row) => {
    if (seen.has(row.id)) return [];
    seen.add(row.id);
    return [{ id: row.id, classpath: row.classpath, ...tryDecodeTriggerKwargs(row.kwargs, `trigger ${row.id}`), createdAt: row.created_at, task: rowKey(row) }];
  });
}

/**
 * One outcome, as a named prepared statement: the commonest write outside a burst (a wait that fires
 * on its own), on the latency path of every resume. Prepared once per connection, it skips parsing
 * and planning; every lookup is by a unique or partial index on a scalar parameter, so the plan
 * PostgreSQL caches is the same index plan whatever the statistics. Same fence as
 * `submitTriggerOutcomes`: the trigger must still be owned by `jobId`, the task instance `deferred`.
 */
const SUBMIT_ONE = `
  WITH owned AS (
    SELECT t.id FROM trigger t WHERE t.id = $1::bigint AND t.triggerer_id = $2::bigint
  ),
  resumed AS (
    UPDATE task_instance ti SET
      state = 'scheduled',
      trigger_id = NULL,
      scheduled_at = clock_timestamp(),
      updated_at = clock_timestamp(),
      next_method = CASE WHEN $3::boolean THEN $5::text ELSE ti.next_method END,
      next_kwargs = CASE WHEN $3::boolean THEN $4::jsonb
                         ELSE coalesce(ti.next_kwargs, '{}'::jsonb) || jsonb_build_object($6::text, $4::jsonb) END,
      trigger_fired_at = CASE WHEN $9::float8 IS NULL THEN ti.trigger_fired_at ELSE clock_timestamp() END,
      trigger_lateness_ms = coalesce($9::float8, ti.trigger_lateness_ms)
    WHERE ti.trigger_id = $1::bigint AND ti.state = 'deferred' AND EXISTS (SELECT 1 FROM owned)
    RETURNING 1
  ),
  notified AS (
    SELECT pg_notify($7::text, $8::text) FROM (SELECT 1 FROM resumed LIMIT 1) one
  )
  SELECT (SELECT count(*)::int FROM owned) AS owned, (SELECT count(*)::int FROM resumed) AS resumed, (SELECT count(*) FROM notified) AS notified`;

export async function submitOneOutcome(pool: pg.Pool, jobId: number, outcome: TriggerOutcome): Promise<SubmitResult> {
  const resumedPayload: PayloadOf<typeof Channels.ti> = 'resumed';
  const { rows } = await pool.query<{ owned: number; resumed: number }>({
    name: 'tsflow_submit_one_outcome',
    text: SUBMIT_ONE,
    values: [
      outcome.triggerId,
      jobId,
      outcome.kind === 'failure',
      JSON.stringify(outcome.payload),
      FAIL_METHOD,
      EVENT_KEY,
      Channels.ti,
      resumedPayload,
      outcome.kind === 'event' ? (outcome.latenessMs ?? null) : null,
    ],
  });
  const owned = (rows[0]?.owned ?? 0) > 0;
  return { applied: owned ? new Set([outcome.triggerId]) : new Set(), resumed: rows[0]?.resumed ?? 0 };
}
