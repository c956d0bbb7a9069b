import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DagBag } from '../dag-bag/dag-bag.ts';
import { DagSpec, serializeDag } from '../dag-bag/serialized-dag.ts';
import type { Db } from '../db/database.ts';
import { recordParseResult } from '../db/serialized-dags.ts';

/**
 * A DAG as the scheduler sees it: its serialized form from the database when a DAG processor (or an
 * earlier command) stored one, else the DAG folder parsed here and its file's DAGs recorded, as a DAG
 * processor would, so commands work on a fresh database. An unknown DAG throws `DagNotFoundError`,
 * naming the DAGs the folder defines. `record: false` (a dry run) parses without writing.
 */
export async function dagSpecFor(db: Db, dagsFolder: string, dagId: string, options: { record?: boolean } = {}): Promise<DagSpec> {
  const stored = await db
    .selectFrom('serialized_dag')
    .innerJoin('dag', 'dag.dag_id', 'serialized_dag.dag_id')
    .select('serialized_dag.data')
    .where('serialized_dag.dag_id', '=', dagId)
    .where('dag.is_active', '=', true)
    .executeTakeFirst();
  if (stored && stored.data.timetable.kind !== 'custom') return new DagSpec(stored.data);
  if (stored) {
    // A custom timetable needs the DAG's code: a command may run it (a scheduler may not).
    const bag = await DagBag.load(dagsFolder, [stored.data.fileloc]);
    return new DagSpec(stored.data, bag.getDag(dagId).timetable);
  }

  const bag = await DagBag.load(dagsFolder);
  const dag = bag.getDag(dagId);
  const fileloc = dag.fileloc as string;
  const siblings = [...bag.dags.values()].filter((d) => d.fileloc === fileloc);
  const serialized = siblings.map((d) => serializeDag(d, fileloc));
  if (options.record ?? true) {
    const fileHash = createHash('sha256').update(await readFile(fileloc)).digest('hex');
    await recordParseResult(db, { fileloc, fileHash, dags: serialized });
  }
  return new DagSpec(serialized.find((d) => d.dagId === dagId) as (typeof serialized)[number], dag.timetable);
}
