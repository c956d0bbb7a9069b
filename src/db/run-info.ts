import { sql, type RawBuilder } from 'kysely';
import type { JsonObject } from '../sdk/json.ts';
import type { Db } from './database.ts';
import type { DagRunType } from './schema.ts';

/** What a task's context needs from its run, and from the latest earlier successful run of the DAG. */
export interface TryRunInfo {
  conf: JsonObject;
  logicalDate: Date;
  runType: DagRunType;
  /** Null on rows written before runs had a data interval. */
  dataIntervalStart: Date | null;
  dataIntervalEnd: Date | null;
  prevSuccess: PrevSuccessfulRun | undefined;
}

export interface PrevSuccessfulRun {
  dataIntervalStart: Date | null;
  dataIntervalEnd: Date | null;
  startDate: Date | null;
  endDate: Date | null;
}

/** The columns `runInfoColumns` selects, as they come back. */
export interface RunInfoColumns {
  run_conf: JsonObject;
  run_logical_date: Date;
  run_type: DagRunType;
  run_interval_start: Date | null;
  run_interval_end: Date | null;
  prev_run_id: string | null;
  prev_interval_start: Date | null;
  prev_interval_end: Date | null;
  prev_start_date: Date | null;
  prev_end_date: Date | null;
}

/**
 * The select list of `runInfoFrom(alias)`: the run `r` and the previous successful run `p`. Airflow's
 * definition of the previous success (the execution API's `previous-successful-dagrun`): same DAG,
 * logical date strictly earlier, state success, the latest logical date first.
 */
export const runInfoColumns: RawBuilder<unknown> = sql`
  r.conf AS run_conf, r.logical_date AS run_logical_date, r.run_type AS run_type,
  r.data_interval_start AS run_interval_start, r.data_interval_end AS run_interval_end,
  p.run_id AS prev_run_id, p.data_interval_start AS prev_interval_start, p.data_interval_end AS prev_interval_end,
  p.start_date AS prev_start_date, p.end_date AS prev_end_date`;

/** `dag_run r` plus the lateral previous-success lookup `p`, joined on `r`. */
export const prevSuccessJoin: RawBuilder<unknown> = sql`
  LEFT JOIN LATERAL (
    SELECT run_id, data_interval_start, data_interval_end, start_date, end_date FROM dag_run prev
    WHERE prev.dag_id = r.dag_id AND prev.logical_date < r.logical_date AND prev.state = 'success'
    ORDER BY prev.logical_date DESC LIMIT 1
  ) p ON true`;

export function toRunInfo(c: RunInfoColumns): TryRunInfo {
  return {
    conf: c.run_conf,
    logicalDate: c.run_logical_date,
    runType: c.run_type,
    dataIntervalStart: c.run_interval_start,
    dataIntervalEnd: c.run_interval_end,
    prevSuccess:
      c.prev_run_id === null
        ? undefined
        : { dataIntervalStart: c.prev_interval_start, dataIntervalEnd: c.prev_interval_end, startDate: c.prev_start_date, endDate: c.prev_end_date },
  };
}

/** Strips the run-info columns off a joined row, leaving the task instance's own. */
export function splitRunInfo<T extends RunInfoColumns>(joined: T): [Omit<T, keyof RunInfoColumns>, TryRunInfo] {
  const { run_conf, run_logical_date, run_type, run_interval_start, run_interval_end, prev_run_id, prev_interval_start, prev_interval_end, prev_start_date, prev_end_date, ...rest } =
    joined;
  const info = toRunInfo({ run_conf, run_logical_date, run_type, run_interval_start, run_interval_end, prev_run_id, prev_interval_start, prev_interval_end, prev_start_date, prev_end_date });
  return [rest, info];
}

/** One run's context information, or undefined when the run does not exist. */
export async function getRunInfo(db: Db, dagId: string, runId: string): Promise<TryRunInfo | undefined> {
  const { rows } = await sql<RunInfoColumns>`
    SELECT ${runInfoColumns} FROM dag_run r ${prevSuccessJoin}
    WHERE r.dag_id = ${dagId} AND r.run_id = ${runId}`.execute(db);
  return rows[0] ? toRunInfo(rows[0]) : undefined;
}

/** The latest-created run of `dagId` whose logical date is `logicalDate`, with its context information (for `tasks render`). */
export async function findRunByLogicalDate(db: Db, dagId: string, logicalDate: Date): Promise<{ runId: string; info: TryRunInfo } | undefined> {
  const { rows } = await sql<RunInfoColumns & { run_id: string }>`
    SELECT r.run_id, ${runInfoColumns} FROM dag_run r ${prevSuccessJoin}
    WHERE r.dag_id = ${dagId} AND r.logical_date = ${logicalDate}
    ORDER BY r.created_at DESC LIMIT 1`.execute(db);
  const row = rows[0];
  return row ? { runId: row.run_id, info: toRunInfo(row) } : undefined;
}
