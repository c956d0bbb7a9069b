import type { JsonValue } from '../sdk/json.ts';
import type { Db } from './database.ts';
import type { TaskInstanceKey } from './schema.ts';
import { keyColumns } from './task-instances.ts';

/*
 * XComs: values tasks hand to their downstream tasks, keyed by task instance and key. A task's
 * return value is stored by `finishTry` in the same statement as its success (key `return_value`).
 */

export const RETURN_VALUE_KEY = 'return_value';

export async function getXcom(db: Db, key: TaskInstanceKey, xcomKey: string): Promise<JsonValue | undefined> {
  const row = await db.selectFrom('xcom').select('value').where((eb) => eb.and({ ...keyColumns(key), key: xcomKey })).executeTakeFirst();
  return row?.value;
}

/** Stores (or replaces) an XCom; `json` is the value already serialised. */
export async function setXcom(db: Db, key: TaskInstanceKey, xcomKey: string, json: string): Promise<void> {
  await db
    .insertInto('xcom')
    .values({ ...keyColumns(key), key: xcomKey, value: json })
    .onConflict((oc) => oc.columns(['dag_id', 'run_id', 'task_id', 'map_index', 'key']).doUpdateSet({ value: (eb) => eb.ref('excluded.value') }))
    .execute();
}

/**
 * The XComs `xcomKey` of every map index of a mapped task in one run, in map-index order (what a
 * task downstream of a mapped task receives, Airflow's lazy sequence of its results): one entry per
 * map index that pushed the key.
 */
export async function getMappedXcoms(db: Db, dagId: string, runId: string, taskId: string, xcomKey: string): Promise<JsonValue[]> {
  const rows = await db
    .selectFrom('xcom')
    .select('value')
    .where('dag_id', '=', dagId)
    .where('run_id', '=', runId)
    .where('task_id', '=', taskId)
    .where('key', '=', xcomKey)
    .where('map_index', '>=', 0)
    .orderBy('map_index')
    .execute();
  return rows.map((r) => r.value);
}
