import { sql } from 'kysely';
import { DateTime } from 'luxon';
import { DagSpec, serializedDagHash, type SerializedDag } from '../dag-bag/serialized-dag.ts';
import type { Db } from './database.ts';
import { refreshNextDagrun } from './next-dagrun.ts';
import { Channels, notify } from './protocol.ts';

/*
 * What a DAG processor writes and schedulers read: serialized DAGs, the `dag` rows they describe,
 * and import errors. Each file's result is written in one transaction with a NOTIFY, so schedulers
 * see a file's DAGs change all at once and at once.
 */

/** One DAG file, parsed: the DAGs it defines, or why it could not be imported. */
export interface FileParseResult {
  /** Absolute path of the file. */
  readonly fileloc: string;
  /** Hash of the file's content as parsed. */
  readonly fileHash: string;
  readonly dags: readonly SerializedDag[];
  /** Set when the file failed to import (threw, timed out, crashed its parser): its DAGs are left as they were. */
  readonly error?: string;
}

export interface ParseWriteResult {
  /** DAGs whose serialized form changed (or appeared). */
  readonly changed: readonly string[];
  /** DAGs this file no longer defines, now inactive. */
  readonly deactivated: readonly string[];
}

/**
 * Records one parse of one file. With an error: the file's import error is stored and its DAGs keep
 * their last good version (as Airflow's scheduler keeps scheduling them). Without: the import error
 * is cleared, each DAG's row and serialized form written (only when its hash changed), its next run
 * recomputed when the schedule changed, and DAGs the file used to define are deactivated. A DAG id
 * already defined by another active file that still exists is refused with an import error.
 */
export async function recordParseResult(db: Db, result: FileParseResult, fileExists: (fileloc: string) => boolean = () => true): Promise<ParseWriteResult> {
  return db.transaction().execute(async (trx) => {
    // Two processors writing the same file's result take turns (one file's write is short), and the
    // DAG rows are locked in id order, so writers of different files cannot deadlock on them.
    await sql`SELECT pg_advisory_xact_lock(hashtextextended(${result.fileloc}, 0))`.execute(trx);
    if (result.error !== undefined) {
      await upsertImportError(trx, result.fileloc, result.fileHash, result.error);
      await notify(trx, Channels.dag, 'import-error');
      return { changed: [], deactivated: [] };
    }
    const ids = result.dags.map((d) => d.dagId);
    const owners = ids.length === 0 ? [] : await trx
      .selectFrom('dag')
      .select(['dag_id', 'fileloc'])
      .where('dag_id', 'in', ids)
      .where('is_active', '=', true)
      .where('fileloc', '<>', result.fileloc)
      .forUpdate()
      .execute();
    const taken = owners.filter((o) => o.fileloc !== '' && fileExists(o.fileloc));
    if (taken.length > 0) {
      const [first] = taken as [{ dag_id: string; fileloc: string }];
      const error = `DAG id '${first.dag_id}' is already defined in ${first.fileloc}: DAG ids must be unique across the DAG folder`;
      await upsertImportError(trx, result.fileloc, result.fileHash, error);
      await notify(trx, Channels.dag, 'import-error');
      return { changed: [], deactivated: [] };
    }
    await trx.deleteFrom('import_error').where('filename', '=', result.fileloc).execute();

    const changed = await writeDags(trx, [...result.dags].sort(byDagId));

    const gone = await trx
      .updateTable('dag')
      .set({ is_active: false, next_dagrun_create_after: null })
      .where('fileloc', '=', result.fileloc)
      .where('is_active', '=', true)
      .$if(ids.length > 0, (q) => q.where('dag_id', 'not in', ids))
      .returning('dag_id')
      .execute();
    const deactivated = gone.map((g) => g.dag_id);
    if (changed.length > 0 || deactivated.length > 0) await notify(trx, Channels.dag, 'changed');
    return { changed, deactivated };
  });
}

/**
 * Writes DAGs' rows and serialized forms (only those whose hash changed) and recomputes the next run
 * of each changed one; returns the ids that changed. The caller owns the transaction and the NOTIFY.
 */
async function writeDags(trx: Db, dags: readonly SerializedDag[]): Promise<string[]> {
  const changed: string[] = [];
  const now = DateTime.utc();
  for (const dag of dags) {
    const hash = serializedDagHash(dag);
    const before = await trx
      .selectFrom('dag')
      .leftJoin('serialized_dag', 'serialized_dag.dag_id', 'dag.dag_id')
      .select(['dag.is_active', 'serialized_dag.dag_hash'])
      .where('dag.dag_id', '=', dag.dagId)
      .forUpdate('dag')
      .executeTakeFirst();
    await trx
      .insertInto('dag')
      .values({
        dag_id: dag.dagId,
        fileloc: dag.fileloc,
        description: dag.description,
        is_paused: dag.isPausedUponCreation,
        is_active: true,
        timetable_summary: dag.timetableSummary,
        max_active_runs: dag.maxActiveRuns,
        max_active_tasks: dag.maxActiveTasks,
      })
      .onConflict((oc) =>
        oc.column('dag_id').doUpdateSet({
          fileloc: dag.fileloc,
          description: dag.description,
          is_active: true,
          timetable_summary: dag.timetableSummary,
          max_active_runs: dag.maxActiveRuns,
          max_active_tasks: dag.maxActiveTasks,
          last_parsed_at: sql`now()`,
        }),
      )
      .execute();
    if (before?.dag_hash === hash && before.is_active) continue;
    await trx
      .insertInto('serialized_dag')
      .values({ dag_id: dag.dagId, fileloc: dag.fileloc, dag_hash: hash, data: JSON.stringify(dag) })
      .onConflict((oc) =>
        oc.column('dag_id').doUpdateSet({ fileloc: dag.fileloc, dag_hash: hash, data: JSON.stringify(dag), last_updated: sql`now()` }),
      )
      .execute();
    await refreshNextDagrun(trx, new DagSpec(dag), now);
    changed.push(dag.dagId);
  }

  return changed;
}

/**
 * Records DAGs defined in code rather than parsed by a DAG processor (an in-memory DagBag given to
 * an in-process scheduler, `dags trigger`): their rows and serialized forms, in one transaction,
 * without touching import errors or deactivating anything. Returns the ids that changed.
 */
export async function recordDags(db: Db, dags: readonly SerializedDag[]): Promise<string[]> {
  if (dags.length === 0) return [];
  return db.transaction().execute(async (trx) => {
    const changed = await writeDags(trx, [...dags].sort(byDagId));
    if (changed.length > 0) await notify(trx, Channels.dag, 'changed');
    return changed;
  });
}

/**
 * Code-point order, the order enqueueScheduled locks `dag` rows in (`ORDER BY dag_id COLLATE "C"`):
 * every writer that locks several DAG rows takes them in the same order, so none deadlock.
 */
function byDagId(a: SerializedDag, b: SerializedDag): number {
  return a.dagId < b.dagId ? -1 : a.dagId > b.dagId ? 1 : 0;
}

async function upsertImportError(db: Db, filename: string, fileHash: string, stacktrace: string): Promise<void> {
  await db
    .insertInto('import_error')
    .values({ filename, file_hash: fileHash, stacktrace })
    .onConflict((oc) => oc.column('filename').doUpdateSet({ file_hash: fileHash, stacktrace, timestamp: sql`now()` }))
    .execute();
}

/**
 * After a scan of `folder`: DAGs whose file is no longer among `files` are deactivated (they get no
 * new runs; their runs stay visible), and import errors of vanished files are dropped. Only files
 * under `folder` are touched, so processors of different folders do not undo each other.
 */
export async function deactivateMissingFiles(db: Db, folder: string, files: readonly string[]): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    const prefix = folder.endsWith('/') ? folder : `${folder}/`;
    const like = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const gone = await trx
      .updateTable('dag')
      .set({ is_active: false, next_dagrun_create_after: null })
      .where('is_active', '=', true)
      .where('fileloc', 'like', like)
      .$if(files.length > 0, (q) => q.where('fileloc', 'not in', files))
      .returning('dag_id')
      .execute();
    const errors = await trx
      .deleteFrom('import_error')
      .where('filename', 'like', like)
      .$if(files.length > 0, (q) => q.where('filename', 'not in', files))
      .returning('filename')
      .execute();
    if (gone.length > 0 || errors.length > 0) await notify(trx, Channels.dag, 'changed');
    return gone.map((g) => g.dag_id);
  });
}

/** The hash each DAG's serialized form has now (inactive ones too: their runs may still be going): a scheduler reloads only those that changed. */
export async function serializedDagHashes(db: Db): Promise<Map<string, string>> {
  const rows = await db
    .selectFrom('serialized_dag')
    .innerJoin('dag', 'dag.dag_id', 'serialized_dag.dag_id')
    .select(['serialized_dag.dag_id', 'serialized_dag.dag_hash'])
    .execute();
  return new Map(rows.map((r) => [r.dag_id, r.dag_hash]));
}

export async function loadSerializedDags(db: Db, dagIds: readonly string[]): Promise<{ dagId: string; hash: string; data: SerializedDag }[]> {
  if (dagIds.length === 0) return [];
  const rows = await db.selectFrom('serialized_dag').select(['dag_id', 'dag_hash', 'data']).where('dag_id', 'in', dagIds).execute();
  return rows.map((r) => ({ dagId: r.dag_id, hash: r.dag_hash, data: r.data }));
}

/** The files under `folder` that have an import error now. */
export async function importErrorFiles(db: Db, folder: string): Promise<string[]> {
  const prefix = folder.endsWith('/') ? folder : `${folder}/`;
  const like = `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const rows = await db.selectFrom('import_error').select('filename').where('filename', 'like', like).execute();
  return rows.map((r) => r.filename);
}

export interface ImportErrorRow {
  readonly filename: string;
  readonly stacktrace: string;
  readonly timestamp: Date;
}

export async function listImportErrors(db: Db): Promise<ImportErrorRow[]> {
  return db.selectFrom('import_error').select(['filename', 'stacktrace', 'timestamp']).orderBy('filename').execute();
}
