import { type RawBuilder, sql } from 'kysely';
import type { Db } from './database.ts';
import { setRunState } from './dag-runs.ts';
import { lockPoolRooms } from './pools.ts';
import { Channels, notify } from './protocol.ts';
import { mapIndexOf, rowKey, type DagRunState, type TaskInstanceKey, type TaskInstanceRow, type TaskInstanceState } from './schema.ts';
import { createTaskInstances, type TaskInstanceSpec } from './task-instances.ts';

/*
 * The scheduler's queries: dependency bookkeeping, the enqueue critical section, finishing runs.
 */

/**
 * Queued runs that may start now, oldest logical date first: those of unpaused DAGs, at most the
 * DAG's `max_active_runs` minus its running runs (Airflow's `get_queued_dag_runs_to_set_running`).
 * `startQueuedRun` checks the limit again under the DAG's lock.
 */
export async function listStartableRuns(
  db: Db,
  options: { limit?: number; dagIds?: readonly string[] | undefined; ignoreLimits?: boolean } = {},
): Promise<{ dag_id: string; run_id: string }[]> {
  const { limit = 1000, ignoreLimits = false } = options;
  const dagIds = options.dagIds ? [...options.dagIds] : null;
  const { rows } = await sql<{ dag_id: string; run_id: string }>`
    SELECT q.dag_id, q.run_id FROM (
      SELECT r.dag_id, r.run_id, r.logical_date, r.created_at,
        row_number() OVER (PARTITION BY r.dag_id ORDER BY r.logical_date, r.created_at, r.run_id) AS rn
      FROM dag_run r WHERE r.state = 'queued' AND (${dagIds}::text[] IS NULL OR r.dag_id = ANY(${dagIds}::text[]))
    ) q
    JOIN dag d ON d.dag_id = q.dag_id
    WHERE ${ignoreLimits} OR (NOT d.is_paused
      AND q.rn <= d.max_active_runs - (SELECT count(*) FROM dag_run x WHERE x.dag_id = q.dag_id AND x.state = 'running'))
    ORDER BY q.logical_date, q.created_at
    LIMIT ${limit}`.execute(db);
  return rows;
}

/**
 * Starts a queued run: creates its task instances and marks it running, in one transaction. The
 * DAG's row is locked first, so schedulers starting runs of one DAG take turns and `max_active_runs`
 * holds across them; a paused DAG or one at its limit leaves the run queued (false). `checkLimits:
 * false` is for tools that make a running run directly (tests, benchmarks), not for schedulers.
 */
export async function startQueuedRun(
  db: Db,
  dagId: string,
  runId: string,
  specs: readonly TaskInstanceSpec[],
  options: { checkLimits?: boolean } = {},
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    if (options.checkLimits !== false && !(await mayStartRun(trx, dagId))) return false;
    const run = await trx
      .selectFrom('dag_run')
      .select('state')
      .where('dag_id', '=', dagId)
      .where('run_id', '=', runId)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (run?.state !== 'queued') return false; // another scheduler started it
    await createTaskInstances(trx, dagId, runId, specs);
    await setRunState(trx, dagId, runId, 'running');
    return true;
  });
}

/** Locks the DAG's row and says whether one more of its runs may start (unpaused, under max_active_runs). */
async function mayStartRun(trx: Db, dagId: string): Promise<boolean> {
  await sql`SELECT 1 FROM dag WHERE dag_id = ${dagId} FOR UPDATE`.execute(trx);
  // Counted in a second statement: one that waited for the lock counts with its old snapshot.
  const { rows } = await sql<{ ok: boolean }>`
    SELECT NOT d.is_paused AND d.max_active_runs > (SELECT count(*) FROM dag_run x WHERE x.dag_id = d.dag_id AND x.state = 'running') AS ok
    FROM dag d WHERE d.dag_id = ${dagId}`.execute(trx);
  return rows[0]?.ok === true;
}

/** The task instances of every running run: what the scheduler evaluates dependencies on. */
export async function listUndecidedRunTaskInstances(db: Db): Promise<TaskInstanceRow[]> {
  // Only runs that still have undecided task instances (ti_undecided_idx): a scheduler pass runs on
  // every NOTIFY, and re-reading every task instance of every running run would cost it dearly.
  const { rows } = await sql<TaskInstanceRow>`
    SELECT ti.* FROM task_instance ti
    JOIN (
      SELECT DISTINCT u.dag_id, u.run_id FROM task_instance u
      JOIN dag_run r ON r.dag_id = u.dag_id AND r.run_id = u.run_id AND r.state = 'running'
      WHERE u.state IS NULL
    ) undecided ON undecided.dag_id = ti.dag_id AND undecided.run_id = ti.run_id`.execute(db);
  return rows;
}

export interface StateChange {
  key: TaskInstanceKey;
  state: TaskInstanceState;
  error?: string;
}

/**
 * Moves task instances from one of `from` to a new state, in one statement; rows that are no longer
 * in `from` (another scheduler got there first) are left alone. Returns the keys that changed.
 */
export async function transitionTaskInstances(
  db: Db,
  changes: readonly StateChange[],
  from: readonly (TaskInstanceState | null)[],
): Promise<TaskInstanceKey[]> {
  if (changes.length === 0) return [];
  const fromStates = from.filter((s): s is TaskInstanceState => s !== null);
  const fromNull = from.includes(null);
  const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number }>`
    UPDATE task_instance ti SET
      state = c.state,
      error = coalesce(c.error, ti.error),
      scheduled_at = CASE WHEN c.state = 'scheduled' THEN clock_timestamp() ELSE ti.scheduled_at END,
      end_date = CASE WHEN c.state IN ('skipped', 'upstream_failed', 'failed', 'removed') THEN now() ELSE ti.end_date END,
      updated_at = now()
    FROM unnest(${changes.map((c) => c.key.dagId)}::text[], ${changes.map((c) => c.key.runId)}::text[],
                ${changes.map((c) => c.key.taskId)}::text[], ${changes.map((c) => mapIndexOf(c.key))}::int[], ${changes.map((c) => c.state)}::text[],
                ${changes.map((c) => c.error ?? null)}::text[]) AS c(dag_id, run_id, task_id, map_index, state, error)
    WHERE ti.dag_id = c.dag_id AND ti.run_id = c.run_id AND ti.task_id = c.task_id AND ti.map_index = c.map_index
      AND (ti.state = ANY(${fromStates}::text[]) OR (${fromNull} AND ti.state IS NULL))
    RETURNING ti.dag_id, ti.run_id, ti.task_id, ti.map_index`.execute(db);
  return rows.map(rowKey);
}

/** Why scheduled task instances wait however free the scheduler is; the scheduler warns once per pool. */
export type PoolWait =
  /** Their pool does not exist (Airflow: "not scheduled"). */
  | { kind: 'missing'; pool: string }
  /** Some need more slots than the pool has in all (Airflow: "starved"): they wait until it grows. */
  | { kind: 'too-small'; pool: string; slots: number; poolSlots: number };

/**
 * Part of the very statement that marks task instances queued: an executor whose broker lives in the
 * same database (graphile) publishes their jobs here, so the rows and their jobs commit together or
 * not at all, at no extra round trip. `publish` reads the rows just queued from the CTE named
 * `queued` (task_instance's columns, after the update) and is run as a CTE of its own; an error in
 * it rolls the enqueue back.
 */
export interface OnEnqueued {
  readonly publish: RawBuilder<unknown>;
}

/**
 * The scheduler's critical section: takes up to `limit` scheduled task instances of running runs
 * (only of `onlyDagIds` when given) — resumed deferrals first, then highest priority, then longest waiting — and marks
 * them queued by `jobId`, within each DAG's `max_active_tasks` and each pool's open slots.
 * Locks, always in this order so schedulers never deadlock: the DAGs' rows (by id), then the rows of
 * the pools their scheduled task instances name (by name, `lockPoolRooms`); so the limits hold
 * across schedulers. The task instances are taken FOR UPDATE SKIP LOCKED, so two schedulers never
 * enqueue the same row. `onPoolWait` hears of task instances no free slot would help; `onEnqueued`
 * runs in the same transaction with the rows queued (an executor publishing their jobs).
 */
export async function enqueueScheduled(
  db: Db,
  jobId: number,
  limit: number | null,
  onlyDagIds?: readonly string[],
  onPoolWait?: (wait: PoolWait) => void,
  onEnqueued?: OnEnqueued,
): Promise<TaskInstanceRow[]> {
  return db.transaction().execute(async (trx) => {
    // Lock, then count in a second statement: a statement that waited for a lock still counts with
    // the snapshot it started with, which would miss what the lock's previous holder just queued.
    // A paused DAG's running runs go on (issue 12: pausing stops new runs, not the ones under way;
    // Airflow's candidate query also skips paused DAGs' task instances, which can strand a run).
    const only = onlyDagIds ? [...onlyDagIds] : null;
    const { rows: locked } = await sql<{ dag_id: string }>`
      SELECT d.dag_id FROM dag d
      WHERE d.dag_id IN (SELECT DISTINCT t.dag_id FROM task_instance t WHERE t.state = 'scheduled')
        AND (${only}::text[] IS NULL OR d.dag_id = ANY(${only}::text[]))
      ORDER BY d.dag_id COLLATE "C"
      FOR UPDATE OF d`.execute(trx);
    if (locked.length === 0) return [];
    const { rows: rooms } = await sql<{ dag_id: string; room: number }>`
      SELECT d.dag_id, d.max_active_tasks - (
        SELECT count(*) FROM task_instance x WHERE x.dag_id = d.dag_id AND x.state IN ('queued', 'running'))::int AS room
      FROM dag d WHERE d.dag_id = ANY(${locked.map((r) => r.dag_id)}::text[])`.execute(trx);
    const dagRoom = new Map(rooms.filter((r) => r.room > 0).map((r) => [r.dag_id, r.room]));
    if (dagRoom.size === 0) return [];
    const poolOpen = await lockOpenPools(trx, [...dagRoom.keys()], onPoolWait);
    if (poolOpen.size === 0) return [];
    // Candidates only from pools with room for them on their own; the walk below then fits them
    // together. Resumed deferrals (next_method set) first, so a fired trigger never waits behind
    // tasks that have not started until it times out (Airflow #44759).
    const open = [...poolOpen];
    const { rows: candidates } = await sql<{
      dag_id: string; run_id: string; task_id: string; map_index: number; pool: string; pool_slots: number; max_active_tis_per_dag: number | null;
    }>`
      SELECT t.dag_id, t.run_id, t.task_id, t.map_index, t.pool, t.pool_slots, t.max_active_tis_per_dag FROM task_instance t
      JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id AND r.state = 'running'
      JOIN unnest(${open.map(([p]) => p)}::text[], ${open.map(([, o]) => o)}::int[]) AS p(pool, open)
        ON p.pool = t.pool AND (p.open IS NULL OR t.pool_slots <= p.open)
      WHERE t.state = 'scheduled' AND t.dag_id = ANY(${[...dagRoom.keys()]}::text[])
      ORDER BY (t.next_method IS NOT NULL) DESC, t.priority_weight DESC, t.scheduled_at, t.dag_id, t.run_id, t.task_id, t.map_index
      LIMIT ${limit}
      FOR UPDATE OF t SKIP LOCKED`.execute(trx);
    // Tasks with a `maxActiveTisPerDag`: how many more of their task instances (map indexes, across
    // the DAG's runs) may be active. Counted under the DAG locks taken above, so it holds across schedulers.
    const taskRoom = await taskRooms(trx, candidates);
    // In that order, each task instance that still fits its DAG's room and its pool's open slots
    // goes; one that does not is skipped, and lower-priority ones that fit may still go (Airflow's).
    const chosen = candidates.filter((c) => {
      const room = dagRoom.get(c.dag_id) ?? 0;
      const slots = poolOpen.get(c.pool);
      if (room <= 0 || (slots !== null && (slots === undefined || c.pool_slots > slots))) return false;
      const taskKey = `${c.dag_id}\u0000${c.task_id}`;
      const perTask = taskRoom.get(taskKey);
      if (perTask !== undefined && perTask <= 0) return false;
      if (perTask !== undefined) taskRoom.set(taskKey, perTask - 1);
      dagRoom.set(c.dag_id, room - 1);
      if (slots !== null) poolOpen.set(c.pool, slots - c.pool_slots);
      return true;
    });
    if (chosen.length === 0) return [];
    const { rows } = await sql<TaskInstanceRow>`
      WITH queued AS (
        UPDATE task_instance ti SET state = 'queued', queued_at = clock_timestamp(), queued_by_job_id = ${jobId}, worker_job_id = NULL, updated_at = now()
        FROM unnest(${chosen.map((c) => c.dag_id)}::text[], ${chosen.map((c) => c.run_id)}::text[], ${chosen.map((c) => c.task_id)}::text[],
                    ${chosen.map((c) => c.map_index)}::int[])
          AS c(dag_id, run_id, task_id, map_index)
        WHERE ti.dag_id = c.dag_id AND ti.run_id = c.run_id AND ti.task_id = c.task_id AND ti.map_index = c.map_index
        RETURNING ti.*
      ),
      published AS (${onEnqueued?.publish ?? sql`SELECT 0`})
      SELECT queued.* FROM queued WHERE (SELECT count(*) FROM published) >= 0`.execute(trx);
    return rows;
  });
}

/** For the candidates' tasks that have a `maxActiveTisPerDag`: the limit minus their queued and running task instances. */
async function taskRooms(
  trx: Db,
  candidates: readonly { dag_id: string; task_id: string; max_active_tis_per_dag: number | null }[],
): Promise<Map<string, number>> {
  const limited = new Map<string, { dagId: string; taskId: string; limit: number }>();
  for (const c of candidates) {
    if (c.max_active_tis_per_dag !== null) limited.set(`${c.dag_id}\u0000${c.task_id}`, { dagId: c.dag_id, taskId: c.task_id, limit: c.max_active_tis_per_dag });
  }
  if (limited.size === 0) return new Map();
  const tasks = [...limited.values()];
  const { rows } = await sql<{ dag_id: string; task_id: string; active: number }>`
    SELECT t.dag_id, t.task_id, count(*)::int AS active FROM task_instance t
    JOIN unnest(${tasks.map((t) => t.dagId)}::text[], ${tasks.map((t) => t.taskId)}::text[]) AS k(dag_id, task_id)
      ON k.dag_id = t.dag_id AND k.task_id = t.task_id
    WHERE t.state IN ('queued', 'running')
    GROUP BY t.dag_id, t.task_id`.execute(trx);
  const active = new Map(rows.map((r) => [`${r.dag_id}\u0000${r.task_id}`, r.active]));
  return new Map([...limited].map(([key, t]) => [key, t.limit - (active.get(key) ?? 0)]));
}

/**
 * Locks and counts the pools that the scheduled task instances of `dagIds` name; returns each pool
 * with open slots (null: unlimited). Reports pools that do not exist and task instances bigger
 * than their whole pool, which no amount of waiting for slots would queue.
 */
async function lockOpenPools(trx: Db, dagIds: readonly string[], onPoolWait?: (wait: PoolWait) => void): Promise<Map<string, number | null>> {
  const { rows: wanted } = await sql<{ pool: string; pool_slots: number }>`
    SELECT t.pool, max(t.pool_slots)::int AS pool_slots FROM task_instance t
    JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id AND r.state = 'running'
    WHERE t.state = 'scheduled' AND t.dag_id = ANY(${[...dagIds]}::text[])
    GROUP BY t.pool`.execute(trx);
  const rooms = new Map((await lockPoolRooms(trx, wanted.map((w) => w.pool))).map((r) => [r.pool, r]));
  for (const w of wanted) {
    const room = rooms.get(w.pool);
    if (!room) onPoolWait?.({ kind: 'missing', pool: w.pool });
    else if (room.slots !== -1 && w.pool_slots > room.slots) onPoolWait?.({ kind: 'too-small', pool: w.pool, slots: room.slots, poolSlots: w.pool_slots });
  }
  return new Map([...rooms.values()].filter((r) => r.open === null || r.open > 0).map((r) => [r.pool, r.open]));
}

/** Retries and reschedules whose time has come (by the database clock) go back to `scheduled`. */
export async function scheduleDueRetries(db: Db): Promise<TaskInstanceKey[]> {
  const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number }>`
    UPDATE task_instance ti SET state = 'scheduled', scheduled_at = clock_timestamp(), ready_at = NULL, updated_at = now()
    FROM dag_run r
    WHERE r.dag_id = ti.dag_id AND r.run_id = ti.run_id AND r.state = 'running'
      AND ti.state IN ('up_for_retry', 'up_for_reschedule') AND ti.ready_at <= clock_timestamp()
    RETURNING ti.dag_id, ti.run_id, ti.task_id, ti.map_index`.execute(db);
  return rows.map(rowKey);
}

/** A DAG's leaves (tasks with no downstream): they decide how its runs end. */
export interface DagLeaves {
  readonly dagId: string;
  readonly leafTaskIds: readonly string[];
}

/**
 * Marks running runs whose task instances have all finished: failed if a leaf task instance failed
 * or is upstream_failed, else success — skipped leaves count as success, and a failure upstream that
 * a trigger rule (`all_done`, `one_failed`) let the run get past does not fail it (Airflow's rule).
 * A DAG missing from `leaves` (not loaded) falls back to "failed if any task instance failed". One
 * transaction with a NOTIFY when a run finished, so `dags trigger --wait` hears it at once.
 */
export async function finishCompletedRuns(
  db: Db,
  leaves: readonly DagLeaves[] = [],
): Promise<{ dagId: string; runId: string; state: DagRunState }[]> {
  const pairs = leaves.flatMap((d) => d.leafTaskIds.map((taskId) => [d.dagId, taskId] as const));
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ dag_id: string; run_id: string; state: DagRunState }>`
      UPDATE dag_run r SET
        state = CASE WHEN EXISTS (
          SELECT 1 FROM task_instance ti WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id AND ti.state IN ('failed', 'upstream_failed')
            AND (NOT (r.dag_id = ANY(${leaves.map((d) => d.dagId)}::text[]))
              OR (ti.dag_id, ti.task_id) IN (SELECT * FROM unnest(${pairs.map((p) => p[0])}::text[], ${pairs.map((p) => p[1])}::text[])))
        ) THEN 'failed' ELSE 'success' END,
        end_date = now()
      WHERE r.state = 'running' AND NOT EXISTS (
        SELECT 1 FROM task_instance ti WHERE ti.dag_id = r.dag_id AND ti.run_id = r.run_id
          AND (ti.state IS NULL OR ti.state NOT IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed')))
      RETURNING r.dag_id, r.run_id, r.state`.execute(trx);
    if (rows.length > 0) await notify(trx, Channels.ti, 'run-finished');
    return rows.map((r) => ({ dagId: r.dag_id, runId: r.run_id, state: r.state }));
  });
}

/**
 * Hands `queued` task instances that no executor will start back to `scheduled`, so a live scheduler
 * enqueues them again: those queued by dead schedulers — ended, or heartbeat older than `thresholdMs`
 * by the database clock — and those queued by this scheduler more than `thresholdMs` ago that its
 * executor does not hold (`held`): an enqueue whose commit landed while its reply was lost to a
 * dropped connection. Their try never started (a started try is `running`), so no try is counted.
 * SKIP LOCKED: a row a worker is starting right now (startTry holds its lock) is left to it.
 */
export async function requeueOrphanedQueued(
  db: Db,
  selfJobId: number,
  thresholdMs: number,
  held: readonly TaskInstanceKey[],
  limit = 5000,
): Promise<TaskInstanceKey[]> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number }>`
      WITH dead AS (
        SELECT j.id FROM job j
        WHERE j.job_type = 'scheduler' AND j.id <> ${selfJobId}
          AND (j.state <> 'running' OR j.latest_heartbeat < now() - make_interval(secs => ${thresholdMs / 1000}))
      ),
      orphans AS (
        SELECT t.dag_id, t.run_id, t.task_id, t.map_index FROM task_instance t
        WHERE t.state = 'queued' AND (
          t.queued_by_job_id IN (SELECT id FROM dead)
          OR (t.queued_by_job_id = ${selfJobId} AND t.queued_at < clock_timestamp() - make_interval(secs => ${thresholdMs / 1000})
              AND (t.dag_id, t.run_id, t.task_id, t.map_index) NOT IN (
                SELECT * FROM unnest(${held.map((k) => k.dagId)}::text[], ${held.map((k) => k.runId)}::text[], ${held.map((k) => k.taskId)}::text[],
                  ${held.map(mapIndexOf)}::int[]))))
        LIMIT ${limit}
        FOR UPDATE OF t SKIP LOCKED
      )
      UPDATE task_instance ti SET state = 'scheduled', queued_by_job_id = NULL, queued_at = NULL,
        scheduled_at = clock_timestamp(), updated_at = now()
      FROM orphans o
      WHERE ti.dag_id = o.dag_id AND ti.run_id = o.run_id AND ti.task_id = o.task_id AND ti.map_index = o.map_index
      RETURNING ti.dag_id, ti.run_id, ti.task_id, ti.map_index`.execute(trx);
    if (rows.length > 0) await notify(trx, Channels.ti, 'requeued');
    return rows.map(rowKey);
  });
}
