import { sql } from 'kysely';
import type { Db } from './database.ts';
import { Channels, notify } from './protocol.ts';
import type { TaskInstanceKey, TaskInstanceState } from './schema.ts';
import { deleteTriggersIfUnused } from './triggers.ts';

export interface ClearRequest {
  dagId: string;
  runId: string;
  /** Only these tasks; all of the run's tasks when empty. */
  taskIds: readonly string[];
  /** Each task's `retries`, so a cleared task gets its full retries again (Airflow's max_tries = try_number + retries). */
  retries: ReadonlyMap<string, number>;
}

export interface ClearedTaskInstance extends TaskInstanceKey {
  previousState: TaskInstanceState | null;
}

/**
 * Resets task instances so they run again (Airflow's clear): state back to none, deferral columns
 * emptied, the run queued again. A deferred task's trigger is deleted — skipping a row an event write
 * holds, which then finds the task no longer deferred — and triggerers are told to look, so they
 * cancel it within one pass. All in one transaction.
 */
export async function clearTaskInstances(db: Db, request: ClearRequest): Promise<ClearedTaskInstance[]> {
  return db.transaction().execute(async (trx) => {
    const { cleared, cancelledTriggers } = await clearInTransaction(trx, request);
    if (cleared.length === 0) return [];
    if (cancelledTriggers) await notify(trx, Channels.trigger, 'cancel');
    await notify(trx, Channels.ti, 'cleared');
    return cleared;
  });
}

/**
 * The write `clearTaskInstances` makes, inside the caller's transaction and without its NOTIFYs, so
 * a caller that clears several runs (a backfill) notifies once. `cancelledTriggers`: the caller must
 * send `tsflow_trigger 'cancel'`.
 */
export async function clearInTransaction(trx: Db, request: ClearRequest): Promise<{ cleared: ClearedTaskInstance[]; cancelledTriggers: boolean }> {
  const taskIds = [...request.taskIds];
  const retryIds = [...request.retries.keys()];
  const retryCounts = retryIds.map((id) => request.retries.get(id) ?? 0);
  const { rows } = await sql<{ task_id: string; map_index: number; previous_state: TaskInstanceState | null; trigger_id: number | null }>`
    WITH target AS (
      SELECT task_id, map_index, state, trigger_id FROM task_instance
      WHERE dag_id = ${request.dagId} AND run_id = ${request.runId}
        AND (cardinality(${taskIds}::text[]) = 0 OR task_id = ANY(${taskIds}::text[]))
      FOR UPDATE
    )
    UPDATE task_instance ti SET
      state = NULL,
      max_tries = ti.try_number + coalesce(
        (SELECT r.retries FROM unnest(${retryIds}::text[], ${retryCounts}::int[]) AS r(task_id, retries) WHERE r.task_id = ti.task_id), 0),
      next_method = NULL, next_kwargs = NULL, trigger_id = NULL, trigger_timeout = NULL,
      ready_at = NULL, end_date = NULL, hostname = NULL, pid = NULL, error = NULL, updated_at = now()
    FROM target
    WHERE ti.dag_id = ${request.dagId} AND ti.run_id = ${request.runId} AND ti.task_id = target.task_id AND ti.map_index = target.map_index
    RETURNING ti.task_id, ti.map_index, target.state AS previous_state, target.trigger_id`.execute(trx);
  if (rows.length === 0) return { cleared: [], cancelledTriggers: false };
  const triggerIds = rows.flatMap((r) => (r.trigger_id === null ? [] : [r.trigger_id]));
  await deleteTriggersIfUnused(trx, triggerIds);
  // A cleared mapped task collapses to its unexpanded task instance (map index -1), which the
  // scheduler expands again — over its upstream's new XCom, which may have another length (Airflow
  // revises the map indexes of a cleared run the same way).
  const mapped = [...new Set(rows.filter((r) => r.map_index >= 0).map((r) => r.task_id))];
  if (mapped.length > 0) {
    await sql`DELETE FROM xcom WHERE dag_id = ${request.dagId} AND run_id = ${request.runId} AND task_id = ANY(${mapped}::text[])`.execute(trx);
    await sql`DELETE FROM task_instance WHERE dag_id = ${request.dagId} AND run_id = ${request.runId}
      AND task_id = ANY(${mapped}::text[]) AND map_index > 0`.execute(trx);
    await sql`UPDATE task_instance SET map_index = -1 WHERE dag_id = ${request.dagId} AND run_id = ${request.runId}
      AND task_id = ANY(${mapped}::text[]) AND map_index = 0`.execute(trx);
  }
  await sql`UPDATE dag_run SET state = 'queued', end_date = NULL WHERE dag_id = ${request.dagId} AND run_id = ${request.runId}`.execute(trx);
  const cleared = rows.map((r) => ({ dagId: request.dagId, runId: request.runId, taskId: r.task_id, ...(r.map_index >= 0 && { mapIndex: r.map_index }), previousState: r.previous_state }));
  return { cleared, cancelledTriggers: triggerIds.length > 0 };
}
