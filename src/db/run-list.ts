import type { Db } from './database.ts';
import type { Listed, Order, Page } from './listing.ts';
import type { DagRunRow, DagRunState, DagRunType } from './schema.ts';

export const RUN_ORDER_COLUMNS = ['logical_date', 'created_at', 'start_date', 'end_date', 'run_id'] as const;

export interface RunListQuery extends Page {
  readonly order: Order<(typeof RUN_ORDER_COLUMNS)[number]>;
  /** undefined: every DAG's runs (Airflow's `~`). */
  readonly dagId?: string | undefined;
  readonly states?: readonly DagRunState[] | undefined;
  readonly runType?: DagRunType | undefined;
  readonly logicalDateGte?: Date | undefined;
  readonly logicalDateLte?: Date | undefined;
}

/** Runs, one page, ordered by one column then by DAG and run id. */
export async function listRuns(db: Db, query: RunListQuery): Promise<Listed<DagRunRow>> {
  const base = db
    .selectFrom('dag_run')
    .$if(query.dagId !== undefined, (q) => q.where('dag_id', '=', query.dagId as string))
    .$if((query.states?.length ?? 0) > 0, (q) => q.where('state', 'in', [...(query.states as DagRunState[])]))
    .$if(query.runType !== undefined, (q) => q.where('run_type', '=', query.runType as DagRunType))
    .$if(query.logicalDateGte !== undefined, (q) => q.where('logical_date', '>=', query.logicalDateGte as Date))
    .$if(query.logicalDateLte !== undefined, (q) => q.where('logical_date', '<=', query.logicalDateLte as Date));
  const direction = query.order.desc ? 'desc' : 'asc';
  const [rows, count] = await Promise.all([
    base.selectAll().orderBy(query.order.column, direction).orderBy('dag_id').orderBy('run_id').limit(query.limit).offset(query.offset).execute(),
    base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}
