import { sql } from 'kysely';
import { DateTime } from 'luxon';
import { manualRunOf } from '../cli/active-dags.ts';
import { DagSpec } from '../dag-bag/serialized-dag.ts';
import type { ExternalRunState, ExternalStateQuery, TriggerDagRunRequest, TriggeredDagRun } from '../sdk/cross-dag.ts';
import { clearTaskInstances } from './clear.ts';
import { createDagRun, DagRunExistsError } from './dag-runs.ts';
import type { Db } from './database.ts';
import type { DagRunState, TaskInstanceState } from './schema.ts';

/*
 * Other DAGs' runs as cross-DAG operators and the triggerer's run watcher reach them: trigger a run
 * (what `tsflow dags trigger` and POST /dags/{id}/dagRuns do), and read the states of many runs at once.
 */

export class CrossDagError extends Error {
  override name = 'CrossDagError';
}

/**
 * Reads the runs (and asked task instances) of every query in ONE statement: runs matched by
 * (dag_id, run_id) through the primary key, or by (dag_id, logical_date) through its dag_id prefix.
 * The triggerer's watcher calls it with all its watches at once, so a NOTIFY costs one round trip
 * whatever the number of waiting triggers.
 */
export async function readExternalStates(db: Db, queries: readonly ExternalStateQuery[]): Promise<ExternalRunState[]> {
  const byId = queries.flatMap((q) => (q.runIds ?? []).map((runId) => [q.dagId, runId] as const));
  const byDate = queries.flatMap((q) => (q.logicalDates ?? []).map((date) => [q.dagId, new Date(date)] as const));
  const tasks = queries.flatMap((q) => (q.taskIds ?? []).map((taskId) => [q.dagId, taskId] as const));
  if (byId.length === 0 && byDate.length === 0) return [];
  const { rows } = await sql<{ dag_id: string; run_id: string; logical_date: Date; state: DagRunState; tasks: Record<string, TaskInstanceState | null> }>`
    WITH wanted_tasks AS (
      SELECT DISTINCT dag_id, task_id FROM unnest(${tasks.map((t) => t[0])}::text[], ${tasks.map((t) => t[1])}::text[]) AS w(dag_id, task_id)
    ),
    matched AS (
      SELECT r.dag_id, r.run_id, r.logical_date, r.state FROM dag_run r
      JOIN unnest(${byId.map((k) => k[0])}::text[], ${byId.map((k) => k[1])}::text[]) AS w(dag_id, run_id)
        ON r.dag_id = w.dag_id AND r.run_id = w.run_id
      UNION
      SELECT r.dag_id, r.run_id, r.logical_date, r.state FROM dag_run r
      JOIN unnest(${byDate.map((k) => k[0])}::text[], ${byDate.map((k) => k[1])}::timestamptz[]) AS w(dag_id, logical_date)
        ON r.dag_id = w.dag_id AND r.logical_date = w.logical_date
    )
    SELECT m.dag_id, m.run_id, m.logical_date, m.state,
      (SELECT coalesce(jsonb_object_agg(ti.task_id, ti.state), '{}'::jsonb) FROM task_instance ti
        WHERE ti.dag_id = m.dag_id AND ti.run_id = m.run_id
          AND ti.task_id IN (SELECT t.task_id FROM wanted_tasks t WHERE t.dag_id = m.dag_id)) AS tasks
    FROM matched m`.execute(db);
  return rows.map((r) => ({ dagId: r.dag_id, runId: r.run_id, logicalDate: r.logical_date.toISOString(), state: r.state, tasks: r.tasks }));
}

/** Whether `dagId` is an active DAG, and its task ids as last parsed. */
export async function describeDag(db: Db, dagId: string): Promise<{ taskIds: string[] | undefined } | undefined> {
  const row = await db
    .selectFrom('dag')
    .leftJoin('serialized_dag', 'serialized_dag.dag_id', 'dag.dag_id')
    .select(['dag.dag_id', 'serialized_dag.data'])
    .where('dag.dag_id', '=', dagId)
    .where('dag.is_active', '=', true)
    .executeTakeFirst();
  if (!row) return undefined;
  return { taskIds: row.data ? row.data.tasks.map((t) => t.taskId) : undefined };
}

/**
 * Queues a run of another DAG, as `tsflow dags trigger` does (conf checked against its params, the
 * inferred data interval, `manual__<logical date>` by default). With `reset`, a run that already has
 * the id is cleared instead (every task instance back to none, the run queued again: Airflow's
 * `reset_dag_run`), with each task's retries from the DAG as last parsed.
 */
export async function triggerDagRun(db: Db, request: TriggerDagRunRequest): Promise<TriggeredDagRun> {
  const { dagId } = request;
  const known = await describeDag(db, dagId);
  if (!known) throw new CrossDagError(`DAG '${dagId}' not found (or its file no longer defines it): check the DAG id to trigger, and that its file parsed (tsflow dags list-import-errors)`);
  const logicalDate = request.logicalDate ?? DateTime.utc();
  const run = await manualRunOf(db, dagId, logicalDate, request.conf ?? {});
  const runId = request.runId ?? run.runId;
  try {
    await createDagRun(db, { ...run, runId });
    return { dagId, runId, logicalDate, created: true };
  } catch (error) {
    if (!(error instanceof DagRunExistsError) || !request.reset) throw error;
  }
  const existing = await db.selectFrom('dag_run').select('logical_date').where('dag_id', '=', dagId).where('run_id', '=', runId).executeTakeFirstOrThrow();
  const serialized = await db.selectFrom('serialized_dag').select('data').where('dag_id', '=', dagId).executeTakeFirst();
  const retries = new Map(serialized ? [...new DagSpec(serialized.data).tasks.values()].map((t) => [t.taskId, t.retries] as const) : []);
  await clearTaskInstances(db, { dagId, runId, taskIds: [], retries });
  return { dagId, runId, logicalDate: DateTime.fromJSDate(existing.logical_date, { zone: 'utc' }), created: false };
}
