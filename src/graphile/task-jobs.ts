import { type RawBuilder, sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { mapIndexOf, rowKey, tiKeyString, type TaskInstanceKey, type TaskInstanceRow } from '../db/schema.ts';

/*
 * The graphile-worker jobs that carry task instances to `tsflow worker`s: one job per queued try,
 * added in the transaction that queues it. graphile-worker's `queue_name` serialises jobs (one at a
 * time per queue), it does not route; routing is by task identifier — a worker registers handlers
 * only for its queues' identifiers, so it never locks another queue's job.
 */

const IDENTIFIER_PREFIX = 'tsflow_task:';

/** The task identifier of a tsflow queue's jobs. */
export function taskIdentifier(queue: string): string {
  return `${IDENTIFIER_PREFIX}${queue}`;
}

/**
 * The job key of one try: `<dag>/<run>/<task>#<try>`, `<dag>/<run>/<task>[<map index>]#<try>` for a
 * mapped task instance (`tiKeyString`). The try is the one the job will run: the stored try number +
 * 1 for a fresh start, the same number for a resume from a deferral.
 */
export function jobKey(key: TaskInstanceKey, tryNumber: number): string {
  return `${tiKeyString(key)}#${tryNumber}`;
}

/** What a job carries: which try of which task instance to run. */
export interface TaskJobPayload {
  dagId: string;
  runId: string;
  taskId: string;
  /** Absent (-1) for an unmapped task instance. */
  mapIndex?: number;
  /** The try this job runs (see jobKey). */
  tryNumber: number;
}

export function isTaskJobPayload(value: unknown): value is TaskJobPayload {
  const p = value as Partial<TaskJobPayload> | null;
  return typeof p === 'object' && p !== null && typeof p.dagId === 'string' && typeof p.runId === 'string'
    && typeof p.taskId === 'string' && Number.isInteger(p.tryNumber) && (p.mapIndex === undefined || Number.isInteger(p.mapIndex));
}

/** The try a queued row's job runs: a resume continues its try, anything else starts the next one. */
export function tryToRun(row: Pick<TaskInstanceRow, 'try_number' | 'next_method'>): number {
  return row.next_method === null ? row.try_number + 1 : row.try_number;
}

/** `tryToRun` in SQL, over the task_instance columns of `alias`. */
function tryToRunSql(alias: string): RawBuilder<number> {
  const t = sql.raw(alias);
  return sql<number>`(CASE WHEN ${t}.next_method IS NULL THEN ${t}.try_number + 1 ELSE ${t}.try_number END)`;
}

/** `jobKey` in SQL, for the try a queued row of `alias` runs. */
export function jobKeySql(alias: string): RawBuilder<string> {
  const t = sql.raw(alias);
  return sql<string>`(${t}.dag_id || '/' || ${t}.run_id || '/' || ${t}.task_id || ${mapSuffixSql(alias)} || '#' || ${tryToRunSql(alias)})`;
}

/** `[i]` for a mapped row of `alias`, '' for an unmapped one (as tiKeyString). */
function mapSuffixSql(alias: string): RawBuilder<string> {
  const t = sql.raw(alias);
  return sql<string>`(CASE WHEN ${t}.map_index >= 0 THEN '[' || ${t}.map_index || ']' ELSE '' END)`;
}

/**
 * The jobs of the rows the scheduler's enqueue statement just marked queued (its CTE `queued`), one
 * per row, added by that same statement (OnEnqueued): a task instance is never queued without its
 * job, nor a job added for one that was not queued, and publishing costs no round trip of its own.
 * job_key_mode is `replace` (add_jobs' only mode): a job of the same try that no worker has locked
 * yet is replaced — so a repeated enqueue of a try leaves one job, never two — while a locked one
 * (a worker is finishing the try's previous part, e.g. the run that deferred) keeps running and
 * loses its key, so the resume gets a job of its own. `unsafe_dedupe` would hand the resume to the
 * finishing job and lose it. max_attempts 1: tsflow counts tries and retries itself. Priority: the
 * higher the task's weight, the sooner (graphile runs the lowest number first).
 */
export const publishQueuedJobs: RawBuilder<unknown> = sql`
  SELECT count(*) FROM graphile_worker.add_jobs((
    SELECT array_agg(ROW(
      ${IDENTIFIER_PREFIX} || q.queue,
      json_build_object('dagId', q.dag_id, 'runId', q.run_id, 'taskId', q.task_id, 'mapIndex', q.map_index, 'tryNumber', ${tryToRunSql('q')}),
      NULL, NULL, 1, ${jobKeySql('q')}, (-greatest(-32767, least(32767, q.priority_weight)))::smallint, NULL
    )::graphile_worker.job_spec)
    FROM queued q))
  WHERE EXISTS (SELECT 1 FROM queued)`;

/** One held try's standing, for the executor's sync. */
export interface TryStanding {
  key: TaskInstanceKey;
  state: TaskInstanceRow['state'];
  tryNumber: number;
  /** The try the task instance's job runs, when it is queued: its try, or the next one. */
  queuedTry: number;
  /** Its job exists (waiting or running). */
  jobExists: boolean;
  /** Its job failed for good (the handler threw): graphile's last_error. */
  jobError: string | null;
}

/**
 * Where each held try stands — task instance state and its job — in one statement for all of them.
 * `tries` pairs each key with the try its job runs.
 */
export async function tryStandings(db: Db, tries: readonly { key: TaskInstanceKey; tryNumber: number }[]): Promise<TryStanding[]> {
  if (tries.length === 0) return [];
  const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number; state: TaskInstanceRow['state']; try_number: number; next_method: string | null; job_exists: boolean; job_error: string | null }>`
    SELECT h.dag_id, h.run_id, h.task_id, h.map_index, ti.state, ti.try_number, ti.next_method,
      j.id IS NOT NULL AS job_exists,
      CASE WHEN j.attempts >= j.max_attempts AND j.locked_at IS NULL THEN coalesce(j.last_error, 'failed') END AS job_error
    FROM unnest(${tries.map((t) => t.key.dagId)}::text[], ${tries.map((t) => t.key.runId)}::text[], ${tries.map((t) => t.key.taskId)}::text[],
                ${tries.map((t) => mapIndexOf(t.key))}::int[], ${tries.map((t) => jobKey(t.key, t.tryNumber))}::text[]) AS h(dag_id, run_id, task_id, map_index, job_key)
    LEFT JOIN task_instance ti ON ti.dag_id = h.dag_id AND ti.run_id = h.run_id AND ti.task_id = h.task_id AND ti.map_index = h.map_index
    LEFT JOIN graphile_worker._private_jobs j ON j.key = h.job_key`.execute(db);
  return rows.map((r) => ({
    key: rowKey(r),
    state: r.state,
    tryNumber: r.try_number,
    queuedTry: tryToRun(r),
    jobExists: r.job_exists,
    jobError: r.job_error,
  }));
}

/** Deletes the jobs of these tries (failed ones, once their failure was handed to the scheduler). */
export async function deleteTaskJobs(db: Db, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await sql`DELETE FROM graphile_worker._private_jobs WHERE key = ANY(${[...keys]}::text[]) AND locked_at IS NULL`.execute(db);
}

/**
 * Airflow's `try_adopt_task_instances` for the graphile executor: task instances queued by a dead
 * scheduler (ended, or silent past `deadThresholdMs`) whose job is still in graphile-worker — or
 * already running on a worker — are taken over by `selfJobId` instead of being queued again (which
 * would give them a second job). Rows are taken FOR UPDATE SKIP LOCKED, so two schedulers never
 * adopt the same one, and a row a worker is starting right now is left for the next look.
 */
export async function adoptQueuedWithJobs(db: Db, selfJobId: number, deadThresholdMs: number, limit = 5000): Promise<TaskInstanceRow[]> {
  const { rows } = await sql<TaskInstanceRow>`
    WITH dead AS (
      SELECT j.id FROM job j
      WHERE j.job_type = 'scheduler' AND j.id <> ${selfJobId}
        AND (j.state <> 'running' OR j.latest_heartbeat < now() - make_interval(secs => ${deadThresholdMs / 1000}))
    ),
    adoptable AS (
      SELECT t.dag_id, t.run_id, t.task_id, t.map_index FROM task_instance t
      WHERE t.queued_by_job_id IN (SELECT id FROM dead)
        AND (t.state = 'running' OR (t.state = 'queued' AND EXISTS (
          SELECT 1 FROM graphile_worker._private_jobs j WHERE j.key = ${jobKeySql('t')})))
      LIMIT ${limit}
      FOR UPDATE OF t SKIP LOCKED
    )
    UPDATE task_instance ti SET queued_by_job_id = ${selfJobId}
    FROM adoptable a
    WHERE ti.dag_id = a.dag_id AND ti.run_id = a.run_id AND ti.task_id = a.task_id AND ti.map_index = a.map_index
    RETURNING ti.*`.execute(db);
  return rows;
}

/**
 * Withdraws the jobs of these tries that no worker has locked, while their task instance is still
 * queued (Airflow's `revoke_task`): a worker locking a job at the same moment wins (DELETE waits on
 * its row lock and then sees `locked_at` set). Returns the tries withdrawn, with their queue.
 */
export async function revokeUnstartedJobs(db: Db, tries: readonly { key: TaskInstanceKey; tryNumber: number }[]): Promise<{ key: TaskInstanceKey; queue: string }[]> {
  if (tries.length === 0) return [];
  const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; map_index: number; identifier: string }>`
    DELETE FROM graphile_worker._private_jobs j
    USING unnest(${tries.map((t) => t.key.dagId)}::text[], ${tries.map((t) => t.key.runId)}::text[], ${tries.map((t) => t.key.taskId)}::text[],
                 ${tries.map((t) => mapIndexOf(t.key))}::int[], ${tries.map((t) => jobKey(t.key, t.tryNumber))}::text[]) AS h(dag_id, run_id, task_id, map_index, job_key),
          task_instance ti, graphile_worker._private_tasks gt
    WHERE j.key = h.job_key AND j.locked_at IS NULL AND gt.id = j.task_id
      AND ti.dag_id = h.dag_id AND ti.run_id = h.run_id AND ti.task_id = h.task_id AND ti.map_index = h.map_index AND ti.state = 'queued'
    RETURNING h.dag_id, h.run_id, h.task_id, h.map_index, gt.identifier`.execute(db);
  return rows.map((r) => ({ key: rowKey(r), queue: r.identifier.slice(IDENTIFIER_PREFIX.length) }));
}

/**
 * Deletes the jobs a live worker holds locked (`locked_by` one of its graphile-worker ids) whose
 * handler has returned — not in `activeJobIds`, and locked over `minAgeMs` ago, so a job locked an
 * instant ago whose handler has not begun is left alone. They are jobs graphile-worker could not
 * mark done (see src/graphile/job-release.ts): their try ran, its outcome is in tsflow's tables, and
 * with max_attempts 1 they would otherwise stay locked for good. Returns how many it deleted.
 */
export async function deleteLeftoverJobs(db: Db, graphileWorkerIds: readonly string[], activeJobIds: readonly string[], minAgeMs: number): Promise<number> {
  if (graphileWorkerIds.length === 0) return 0;
  const { numAffectedRows } = await sql`
    DELETE FROM graphile_worker._private_jobs
    WHERE locked_by = ANY(${[...graphileWorkerIds]}::text[]) AND NOT (id = ANY(${[...activeJobIds]}::bigint[]))
      AND locked_at < now() - make_interval(secs => ${minAgeMs / 1000})`.execute(db);
  return Number(numAffectedRows ?? 0);
}
