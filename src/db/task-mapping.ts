import { sql } from 'kysely';
import type { JsonValue } from '../sdk/json.ts';
import type { Db } from './database.ts';
import type { TaskInstanceKey } from './schema.ts';

/*
 * Expanding a mapped task instance (Airflow's `expand_mapped_task`): its unexpanded row (map index
 * -1) becomes map index 0 and rows 1…n-1 are added beside it, all `scheduled` — or, for an
 * expansion to nothing, the row is `skipped`. ONE statement, fenced on the row still being
 * unexpanded and undecided, so two schedulers expand it once.
 */

export type Expanded = { kind: 'expanded'; keys: TaskInstanceKey[] } | { kind: 'skipped'; key: TaskInstanceKey } | { kind: 'gone' };

export async function expandTaskInstance(db: Db, key: { dagId: string; runId: string; taskId: string }, length: number): Promise<Expanded> {
  if (length === 0) {
    const { rows } = await sql<{ n: number }>`
      UPDATE task_instance SET state = 'skipped', start_date = clock_timestamp(), end_date = clock_timestamp(), updated_at = now()
      WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND task_id = ${key.taskId} AND map_index = -1 AND state IS NULL
      RETURNING 1 AS n`.execute(db);
    return rows.length > 0 ? { kind: 'skipped', key } : { kind: 'gone' };
  }
  const { rows } = await sql<{ map_index: number }>`
    WITH expanded AS (
      UPDATE task_instance SET map_index = 0, state = 'scheduled', scheduled_at = clock_timestamp(), updated_at = now()
      WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND task_id = ${key.taskId} AND map_index = -1 AND state IS NULL
      RETURNING *
    ),
    added AS (
      INSERT INTO task_instance (dag_id, run_id, task_id, map_index, state, scheduled_at, max_tries, priority_weight, queue, pool, pool_slots, max_active_tis_per_dag)
      SELECT e.dag_id, e.run_id, e.task_id, g.i, 'scheduled', e.scheduled_at, e.max_tries, e.priority_weight, e.queue, e.pool, e.pool_slots, e.max_active_tis_per_dag
      FROM expanded e, generate_series(1, ${length - 1}::int) AS g(i)
      RETURNING map_index
    )
    SELECT map_index FROM expanded UNION ALL SELECT map_index FROM added ORDER BY map_index`.execute(db);
  if (rows.length === 0) return { kind: 'gone' };
  return { kind: 'expanded', keys: rows.map((r) => ({ ...key, mapIndex: r.map_index })) };
}

/**
 * The XCom rows of `taskId` with `xcomKey` in one run: one per map index for a mapped task (index ≥
 * 0), or its single one (-1), with the map index.
 */
export async function xcomsForMapping(db: Db, dagId: string, runId: string, taskId: string, xcomKey: string): Promise<{ map_index: number; value: JsonValue }[]> {
  return db
    .selectFrom('xcom')
    .select(['map_index', 'value'])
    .where('dag_id', '=', dagId)
    .where('run_id', '=', runId)
    .where('task_id', '=', taskId)
    .where('key', '=', xcomKey)
    .orderBy('map_index')
    .execute();
}
