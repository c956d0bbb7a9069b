import path from 'node:path';
import type { DateTime } from 'luxon';
import { DagNotFoundError } from '../dag-bag/dag-bag.ts';
import { DagSpec } from '../dag-bag/serialized-dag.ts';
import type { NewDagRun } from '../db/dag-runs.ts';
import type { Db } from '../db/database.ts';
import { runIdFor } from '../db/next-dagrun.ts';
import { listImportErrors } from '../db/serialized-dags.ts';
import type { JsonObject } from '../sdk/json.ts';
import { resolveParams } from '../sdk/params.ts';

/** The active DAGs a DAG processor recorded from files under `folder`. */
export async function activeDagsIn(db: Db, folder: string): Promise<string[]> {
  const prefix = `${path.resolve(folder)}${path.sep}`;
  const rows = await db.selectFrom('dag').select(['dag_id', 'fileloc']).where('is_active', '=', true).orderBy('dag_id').execute();
  return rows.filter((r) => r.fileloc.startsWith(prefix)).map((r) => r.dag_id);
}

/**
 * Throws DagNotFoundError unless the database knows `dagId` as an active DAG, naming the DAGs of the
 * folder it does know and the first import error, as loading the folder in-process used to.
 */
export async function requireActiveDag(db: Db, folder: string, dagId: string): Promise<void> {
  const row = await db.selectFrom('dag').select('dag_id').where('dag_id', '=', dagId).where('is_active', '=', true).executeTakeFirst();
  if (row) return;
  const known = (await activeDagsIn(db, folder)).join(', ') || 'none';
  let message = `DAG '${dagId}' not found in ${path.resolve(folder)} (DAGs found: ${known})`;
  const errors = (await listImportErrors(db)).filter((e) => e.filename.startsWith(`${path.resolve(folder)}${path.sep}`));
  const [first] = errors;
  if (first) message += `; ${errors.length} file(s) failed to import, e.g. ${path.relative(process.cwd(), first.filename)}: ${first.stacktrace.split('\n')[0]}`;
  throw new DagNotFoundError(message);
}

/**
 * A manual run of a recorded DAG at `logicalDate`: Airflow's run id, the data interval its timetable
 * infers (zero-length for a custom timetable, whose code is not loaded here), and `conf` checked
 * against the DAG's params (InvalidParamsError names the field).
 */
export async function manualRunOf(db: Db, dagId: string, logicalDate: DateTime, conf: JsonObject): Promise<NewDagRun> {
  const row = await db.selectFrom('serialized_dag').select('data').where('dag_id', '=', dagId).executeTakeFirst();
  const spec = row ? new DagSpec(row.data) : undefined;
  if (spec) resolveParams(spec.data.params, conf);
  const interval = spec?.timetable?.inferManualInterval(logicalDate) ?? { start: logicalDate, end: logicalDate };
  return {
    dagId,
    runId: runIdFor('manual', logicalDate),
    conf,
    runType: 'manual',
    logicalDate: logicalDate.toJSDate(),
    dataInterval: { start: interval.start.toJSDate(), end: interval.end.toJSDate() },
  };
}
