import { stat } from 'node:fs/promises';
import type { Db } from '../db/database.ts';
import type { Dag } from '../sdk/dag.ts';
import { DagBag } from './dag-bag.ts';

export interface LoadedDag {
  readonly dag: Dag;
  /** The file could not be imported afresh (CommonJS): this is the version imported before. */
  readonly stale: boolean;
}

/**
 * Loads one DAG: from the file the `dag` table recorded when known (fast), else the whole folder.
 * With `version`, the file is imported afresh rather than from the module cache (see DagBag.load).
 */
export async function loadDag(db: Db, dagsFolder: string, dagId: string, version?: string): Promise<Dag> {
  return (await loadDagVersion(db, dagsFolder, dagId, version)).dag;
}

export async function loadDagVersion(db: Db, dagsFolder: string, dagId: string, version?: string): Promise<LoadedDag> {
  const row = await db.selectFrom('dag').select('fileloc').where('dag_id', '=', dagId).executeTakeFirst();
  if (row?.fileloc) {
    const bag = await DagBag.load(dagsFolder, [row.fileloc], { version });
    const found = bag.dags.get(dagId);
    if (found) return { dag: found, stale: bag.staleFiles.size > 0 };
  }
  const bag = await DagBag.load(dagsFolder, undefined, { version });
  return { dag: bag.getDag(dagId), stale: bag.staleFiles.size > 0 };
}

/** What identifies a file's content cheaply: a warm worker re-imports a DAG whose file's stamp changed. */
export async function fileStamp(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  const s = await stat(file).catch(() => undefined);
  return s ? `${s.mtimeMs}-${s.size}-${s.ino}` : undefined;
}
