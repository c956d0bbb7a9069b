import type { SerializedDag } from '../dag-bag/serialized-dag.ts';
import type { Db } from './database.ts';
import { likeContains, type Listed, type Order, type Page } from './listing.ts';
import type { Selectable } from 'kysely';
import type { DagTable } from './schema.ts';

/* The DAGs as the API lists them: the `dag` rows a DAG processor wrote, with their tags from the serialized form. */

export type DagRow = Selectable<DagTable>;
export const DAG_ORDER_COLUMNS = ['dag_id', 'next_dagrun', 'last_parsed_at'] as const;

export interface DagListQuery extends Page {
  readonly order: Order<(typeof DAG_ORDER_COLUMNS)[number]>;
  /** Part of the DAG id. */
  readonly dagIdPattern?: string | undefined;
  readonly paused?: boolean | undefined;
  /** Only DAGs whose file still defines them. @default true */
  readonly onlyActive?: boolean | undefined;
}

export async function listDags(db: Db, query: DagListQuery): Promise<Listed<DagRow & { tags: string[] }>> {
  const base = db
    .selectFrom('dag')
    .$if(query.onlyActive ?? true, (q) => q.where('is_active', '=', true))
    .$if(query.paused !== undefined, (q) => q.where('is_paused', '=', query.paused as boolean))
    .$if(query.dagIdPattern !== undefined, (q) => q.where('dag_id', 'ilike', likeContains(query.dagIdPattern as string)));
  const [rows, count] = await Promise.all([
    base
      .leftJoin('serialized_dag', 'serialized_dag.dag_id', 'dag.dag_id')
      .selectAll('dag')
      .select((eb) => eb.ref('serialized_dag.data', '->').key('tags').$castTo<string[] | null>().as('tags'))
      .orderBy(`dag.${query.order.column}`, query.order.desc ? 'desc' : 'asc')
      .orderBy('dag.dag_id')
      .limit(query.limit)
      .offset(query.offset)
      .execute(),
    base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows: rows.map((r) => ({ ...r, tags: r.tags ?? [] })), total: Number(count.n) };
}

/** A DAG's row and its serialized form (tasks, schedule, params); undefined when the database does not know it. */
export async function getDagDetail(db: Db, dagId: string): Promise<{ dag: DagRow; serialized: SerializedDag | null } | undefined> {
  const row = await db
    .selectFrom('dag')
    .leftJoin('serialized_dag', 'serialized_dag.dag_id', 'dag.dag_id')
    .selectAll('dag')
    .select('serialized_dag.data')
    .where('dag.dag_id', '=', dagId)
    .executeTakeFirst();
  if (!row) return undefined;
  const { data, ...dag } = row;
  return { dag, serialized: data ?? null };
}
