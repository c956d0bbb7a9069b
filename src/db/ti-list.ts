import { sql } from 'kysely';
import type { Db } from './database.ts';
import type { Listed, Order, Page } from './listing.ts';
import { Channels, notify } from './protocol.ts';
import { mapIndexOf, type TaskInstanceKey, type TaskInstanceRow, type TaskInstanceState } from './schema.ts';
import { deleteTriggersIfUnused } from './triggers.ts';

export const TI_ORDER_COLUMNS = ['task_id', 'start_date', 'end_date', 'updated_at', 'priority_weight'] as const;

export interface TaskInstanceListQuery extends Page {
  readonly order: Order<(typeof TI_ORDER_COLUMNS)[number]>;
  readonly dagId: string;
  readonly runId: string;
  /** `null` in the list matches task instances with no state yet. */
  readonly states?: readonly (TaskInstanceState | null)[] | undefined;
}

/** One run's task instances, one page. */
export async function listTaskInstancesPage(db: Db, query: TaskInstanceListQuery): Promise<Listed<TaskInstanceRow>> {
  const states = query.states ?? [];
  const named = states.filter((s): s is TaskInstanceState => s !== null);
  const base = db
    .selectFrom('task_instance')
    .where('dag_id', '=', query.dagId)
    .where('run_id', '=', query.runId)
    .$if(states.length > 0, (q) =>
      q.where((eb) => eb.or([...(named.length > 0 ? [eb('state', 'in', named)] : []), ...(states.includes(null) ? [eb('state', 'is', null)] : [])])),
    );
  const [rows, count] = await Promise.all([
    base.selectAll().orderBy(query.order.column, query.order.desc ? 'desc' : 'asc').orderBy('task_id').orderBy('map_index').limit(query.limit).offset(query.offset).execute(),
    base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}

export type MarkableState = Extract<TaskInstanceState, 'success' | 'failed'>;

/**
 * Marks a task instance success or failed, as Airflow's "mark" does: its state and end date set in
 * one transaction, a deferred one's trigger deleted, and the run queued again when it had finished,
 * so the scheduler evaluates the downstream tasks (it decides them; nothing else is changed here).
 * A running try finds out at its next heartbeat and stops. Returns the previous state, or undefined
 * when there is no such task instance.
 */
export async function markTaskInstance(
  db: Db,
  key: TaskInstanceKey,
  state: MarkableState,
): Promise<{ previousState: TaskInstanceState | null; row: TaskInstanceRow } | undefined> {
  return db.transaction().execute(async (trx) => {
    const before = await trx
      .selectFrom('task_instance')
      .select(['state', 'trigger_id'])
      .where('dag_id', '=', key.dagId)
      .where('run_id', '=', key.runId)
      .where('task_id', '=', key.taskId)
      .where('map_index', '=', mapIndexOf(key))
      .forUpdate()
      .executeTakeFirst();
    if (!before) return undefined;
    const row = await trx
      .updateTable('task_instance')
      .set({
        state,
        end_date: sql<Date>`now()`,
        start_date: sql<Date>`coalesce(start_date, now())`,
        next_method: null,
        next_kwargs: null,
        trigger_id: null,
        trigger_timeout: null,
        ready_at: null,
        hostname: null,
        pid: null,
        updated_at: sql<Date>`now()`,
      })
      .where('dag_id', '=', key.dagId)
      .where('run_id', '=', key.runId)
      .where('task_id', '=', key.taskId)
      .where('map_index', '=', mapIndexOf(key))
      .returningAll()
      .executeTakeFirstOrThrow();
    if (before.trigger_id !== null) {
      await deleteTriggersIfUnused(trx, [before.trigger_id]);
      await notify(trx, Channels.trigger, 'cancel');
    }
    await sql`UPDATE dag_run SET state = 'queued', end_date = NULL
      WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND state IN ('success', 'failed')`.execute(trx);
    await notify(trx, Channels.ti, state);
    return { previousState: before.state, row };
  });
}
