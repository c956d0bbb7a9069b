import { sql } from 'kysely';
import type { Db } from './database.ts';
import { Channels, notify } from './protocol.ts';
import { deleteTriggersIfUnused } from './triggers.ts';

/** A running run's deadline: its start plus its DAG's `dagrunTimeout` (from the serialized DAG). */
const DEADLINE = sql`r.start_date + make_interval(secs => (s.data->>'dagrunTimeoutSeconds')::float8)`;

export interface TimedOutRun {
  readonly dagId: string;
  readonly runId: string;
  /** Task instances that were stopped (skipped). */
  readonly stopped: number;
}

/**
 * Airflow's `dagrun_timeout`: a running run past its deadline fails, and every unfinished task
 * instance of it is skipped — a running try sees its row change and stops, a queued one never
 * starts, a deferred one's trigger is deleted and the triggerers told to cancel it. One transaction
 * per pass; SKIP LOCKED so schedulers share the work.
 */
export async function failTimedOutRuns(db: Db): Promise<TimedOutRun[]> {
  return db.transaction().execute(async (trx) => {
    const { rows: runs } = await sql<{ dag_id: string; run_id: string; timeout: number }>`
      SELECT r.dag_id, r.run_id, (s.data->>'dagrunTimeoutSeconds')::float8 AS timeout FROM dag_run r
      JOIN serialized_dag s ON s.dag_id = r.dag_id
      WHERE r.state = 'running' AND s.data->>'dagrunTimeoutSeconds' IS NOT NULL AND ${DEADLINE} <= clock_timestamp()
      FOR UPDATE OF r SKIP LOCKED`.execute(trx);
    if (runs.length === 0) return [];
    const { rows: stopped } = await sql<{ dag_id: string; run_id: string; trigger_id: number | null }>`
      WITH target AS (
        SELECT t.dag_id, t.run_id, t.task_id, t.map_index, t.trigger_id FROM task_instance t
        JOIN unnest(${runs.map((r) => r.dag_id)}::text[], ${runs.map((r) => r.run_id)}::text[], ${runs.map((r) => r.timeout)}::float8[])
          AS x(dag_id, run_id, timeout) ON x.dag_id = t.dag_id AND x.run_id = t.run_id
        WHERE t.state IS NULL OR t.state NOT IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed')
        FOR UPDATE OF t
      )
      UPDATE task_instance ti SET state = 'skipped', end_date = now(), updated_at = now(),
        error = 'the run exceeded its dagrunTimeout',
        next_method = NULL, next_kwargs = NULL, trigger_id = NULL, trigger_timeout = NULL, ready_at = NULL
      FROM target
      WHERE ti.dag_id = target.dag_id AND ti.run_id = target.run_id AND ti.task_id = target.task_id AND ti.map_index = target.map_index
      RETURNING ti.dag_id, ti.run_id, target.trigger_id`.execute(trx);
    await sql`
      UPDATE dag_run r SET state = 'failed', end_date = now()
      FROM unnest(${runs.map((r) => r.dag_id)}::text[], ${runs.map((r) => r.run_id)}::text[]) AS x(dag_id, run_id)
      WHERE r.dag_id = x.dag_id AND r.run_id = x.run_id`.execute(trx);
    const triggerIds = stopped.flatMap((s) => (s.trigger_id === null ? [] : [s.trigger_id]));
    if (triggerIds.length > 0) {
      await deleteTriggersIfUnused(trx, triggerIds);
      await notify(trx, Channels.trigger, 'cancel');
    }
    await notify(trx, Channels.ti, 'run-finished');
    return runs.map((r) => ({
      dagId: r.dag_id,
      runId: r.run_id,
      stopped: stopped.filter((s) => s.dag_id === r.dag_id && s.run_id === r.run_id).length,
    }));
  });
}

/** Milliseconds until the next running run reaches its dagrunTimeout (database clock), or null. */
export async function msUntilNextRunTimeout(db: Db): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    SELECT (extract(epoch FROM min(${DEADLINE}) - clock_timestamp()) * 1000)::float8 AS ms FROM dag_run r
    JOIN serialized_dag s ON s.dag_id = r.dag_id
    WHERE r.state = 'running' AND s.data->>'dagrunTimeoutSeconds' IS NOT NULL`.execute(db);
  return rows[0]?.ms ?? null;
}
