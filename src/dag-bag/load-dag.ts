import type { Db } from '../db/database.ts';
import type { Dag } from '../sdk/dag.ts';
import { DagBag } from './dag-bag.ts';

/** Loads one DAG: from the file the `dag` table recorded when known (fast), else the whole folder. */
export async function loadDag(db: Db, dagsFolder: string, dagId: string): Promise<Dag> {
  const row = await db.selectFrom('dag').select('fileloc').where('dag_id', '=', dagId).executeTakeFirst();
  if (row?.fileloc) {
    const bag = await DagBag.load(dagsFolder, [row.fileloc]);
    const found = bag.dags.get(dagId);
    if (found) return found;
  }
  return (await DagBag.load(dagsFolder)).getDag(dagId);
}
