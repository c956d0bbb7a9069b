import { sql } from 'kysely';
import type { JsonObject } from '../sdk/json.ts';
import type { Db } from './database.ts';
import { Channels, notify } from './protocol.ts';
import type { DagRunRow, DagRunState, DagRunType } from './schema.ts';

export interface DagRecord {
  dagId: string;
  fileloc: string;
  description?: string | undefined;
}

/** Records the DAGs found in the DAG folder (one statement). */
export async function upsertDags(db: Db, dags: readonly DagRecord[]): Promise<void> {
  if (dags.length === 0) return;
  await db
    .insertInto('dag')
    .values(dags.map((d) => ({ dag_id: d.dagId, fileloc: d.fileloc, description: d.description ?? null })))
    .onConflict((oc) =>
      oc.column('dag_id').doUpdateSet({
        fileloc: (eb) => eb.ref('excluded.fileloc'),
        description: (eb) => eb.ref('excluded.description'),
        last_parsed_at: sql`now()`,
      }),
    )
    .execute();
}

export class DagRunExistsError extends Error {
  override name = 'DagRunExistsError';
}

export interface NewDagRun {
  dagId: string;
  runId: string;
  conf: JsonObject;
  logicalDate: Date;
  runType?: DagRunType;
  /** The run's data interval; a manual run of a scheduled DAG gets the timetable's inferred one. */
  dataInterval?: { start: Date; end: Date };
}

/** Queues a run and wakes the schedulers. The DAG row must exist (upsert it first). */
export async function createDagRun(db: Db, run: NewDagRun): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('dag_run')
      .values({
        dag_id: run.dagId,
        run_id: run.runId,
        state: 'queued',
        run_type: run.runType ?? 'manual',
        conf: JSON.stringify(run.conf),
        logical_date: run.logicalDate,
        data_interval_start: run.dataInterval?.start ?? run.logicalDate,
        data_interval_end: run.dataInterval?.end ?? run.logicalDate,
      })
      .onConflict((oc) => oc.columns(['dag_id', 'run_id']).doNothing())
      .returning('run_id')
      .executeTakeFirst();
    if (!inserted) {
      throw new DagRunExistsError(`DAG '${run.dagId}' already has a run '${run.runId}': choose another --run-id`);
    }
    await notify(trx, Channels.ti, 'run');
  });
}

/** Runs waiting to start, oldest first (the scheduler creates their task instances). */
export async function listQueuedRuns(db: Db): Promise<{ dag_id: string; run_id: string }[]> {
  return db.selectFrom('dag_run').select(['dag_id', 'run_id']).where('state', '=', 'queued').orderBy('created_at').execute();
}

export async function getDagRun(db: Db, dagId: string, runId: string): Promise<DagRunRow | undefined> {
  return db.selectFrom('dag_run').selectAll().where('dag_id', '=', dagId).where('run_id', '=', runId).executeTakeFirst();
}

export async function setRunState(db: Db, dagId: string, runId: string, state: DagRunState): Promise<void> {
  const finished = state === 'success' || state === 'failed';
  await db
    .updateTable('dag_run')
    .set({
      state,
      ...(state === 'running' ? { start_date: sql<Date>`coalesce(start_date, now())` } : {}),
      ...(finished ? { end_date: sql<Date>`now()` } : { end_date: null }),
    })
    .where('dag_id', '=', dagId)
    .where('run_id', '=', runId)
    .execute();
}

/** What `dags list` shows from the `dag` table: paused, and the next scheduled run. */
export interface DagState {
  dagId: string;
  isPaused: boolean;
  nextDagrun: Date | null;
  nextDagrunCreateAfter: Date | null;
}

export async function listDagStates(db: Db, dagIds: readonly string[]): Promise<Map<string, DagState>> {
  if (dagIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('dag')
    .select(['dag_id', 'is_paused', 'next_dagrun', 'next_dagrun_create_after'])
    .where('dag_id', 'in', [...dagIds])
    .execute();
  return new Map(rows.map((r) => [r.dag_id, { dagId: r.dag_id, isPaused: r.is_paused, nextDagrun: r.next_dagrun, nextDagrunCreateAfter: r.next_dagrun_create_after }]));
}
