import type { Selectable } from 'kysely';
import type { Db } from './database.ts';
import type { Listed, Page } from './listing.ts';
import type { XcomTable } from './schema.ts';

export type XcomRow = Selectable<XcomTable>;

export interface XcomListQuery extends Page {
  readonly dagId: string;
  readonly runId: string;
  readonly taskId: string;
  readonly key?: string | undefined;
  /** Only this map index's (-1: unmapped); all when omitted. */
  readonly mapIndex?: number | undefined;
}

/** A task instance's XComs, by key. */
export async function listXcoms(db: Db, query: XcomListQuery): Promise<Listed<XcomRow>> {
  const base = db
    .selectFrom('xcom')
    .where('dag_id', '=', query.dagId)
    .where('run_id', '=', query.runId)
    .where('task_id', '=', query.taskId)
    .$if(query.key !== undefined, (q) => q.where('key', '=', query.key as string))
    .$if(query.mapIndex !== undefined, (q) => q.where('map_index', '=', query.mapIndex as number));
  const [rows, count] = await Promise.all([
    base.selectAll().orderBy('map_index').orderBy('key').limit(query.limit).offset(query.offset).execute(),
    base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}
