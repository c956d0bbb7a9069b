import { sql } from 'kysely';
import { DateTime } from 'luxon';
import type { DagSpec } from '../dag-bag/serialized-dag.ts';
import type { DataInterval } from '../scheduling/timetable.ts';
import type { Db } from './database.ts';
import { refreshNextDagrun } from './next-dagrun.ts';
import { Channels, notify } from './protocol.ts';
import type { DagRunRow, DagRunState } from './schema.ts';

/*
 * A DAG's state as operators change and read it (Airflow's `dags pause`, `dags list-runs`,
 * `dags next-execution`): the CLI calls these, and an API can call the same functions.
 */

export const DAG_RUN_STATES: readonly DagRunState[] = ['queued', 'running', 'success', 'failed'];

export class DagNotInDatabaseError extends Error {
  override name = 'DagNotInDatabaseError';
}

/**
 * Pauses or unpauses a DAG in one transaction with `NOTIFY tsflow_dag 'paused'`. Unpausing also
 * recomputes its next run from now, so a `catchup: false` DAG paused for a week does not create the
 * stale run stored before the pause. Returns whether the flag changed.
 */
export async function setDagPaused(db: Db, spec: DagSpec, paused: boolean, now: DateTime = DateTime.utc()): Promise<{ changed: boolean }> {
  return db.transaction().execute(async (trx) => {
    const before = await trx.selectFrom('dag').select('is_paused').where('dag_id', '=', spec.dagId).forUpdate().executeTakeFirst();
    if (!before) throw new DagNotInDatabaseError(`DAG '${spec.dagId}' has no row in the database: parse it first`);
    await trx.updateTable('dag').set({ is_paused: paused }).where('dag_id', '=', spec.dagId).execute();
    if (!paused) await refreshNextDagrun(trx, spec, now);
    await notify(trx, Channels.dag, 'paused');
    return { changed: before.is_paused !== paused };
  });
}

export async function isDagPaused(db: Db, dagId: string): Promise<boolean | undefined> {
  const row = await db.selectFrom('dag').select('is_paused').where('dag_id', '=', dagId).executeTakeFirst();
  return row?.is_paused;
}

export interface ListRunsQuery {
  readonly state?: DagRunState | undefined;
  /** @default 100 */
  readonly limit?: number | undefined;
}

/** A DAG's runs, newest logical date first (then newest created), at most `limit`. */
export async function listDagRuns(db: Db, dagId: string, query: ListRunsQuery = {}): Promise<DagRunRow[]> {
  return db
    .selectFrom('dag_run')
    .selectAll()
    .where('dag_id', '=', dagId)
    .$if(query.state !== undefined, (q) => q.where('state', '=', query.state as DagRunState))
    .orderBy('logical_date', 'desc')
    .orderBy('created_at', 'desc')
    .limit(query.limit ?? 100)
    .execute();
}

/** The data interval of the DAG's latest scheduled or backfill run, as the scheduler continues from it. */
export async function lastAutomatedInterval(db: Db, dagId: string): Promise<DataInterval | undefined> {
  const { rows } = await sql<{ logical_date: Date; data_interval_start: Date | null; data_interval_end: Date | null }>`
    SELECT logical_date, data_interval_start, data_interval_end FROM dag_run
    WHERE dag_id = ${dagId} AND run_type IN ('scheduled', 'backfill')
    ORDER BY logical_date DESC LIMIT 1`.execute(db);
  const row = rows[0];
  if (!row) return undefined;
  const utc = (d: Date): DateTime => DateTime.fromJSDate(d, { zone: 'utc' });
  return { start: utc(row.data_interval_start ?? row.logical_date), end: utc(row.data_interval_end ?? row.logical_date) };
}
