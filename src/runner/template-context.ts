import type { TaskContext } from '../sdk/context.ts';
import { TemplateDate } from './template-date.ts';

/*
 * The names a template sees, as Airflow's (`ds`, `ts`, `params`, `dag_run.conf`, `ti.try_number`,
 * …), taken from the task's context. `var` and `conn` are added by the renderer, which looks them
 * up on demand.
 */

export type TemplateContext = Record<string, unknown>;

/** Airflow's context keys for a task's templates. Dates are UTC; `ts` is Python's isoformat. */
export function templateContext(context: TaskContext): TemplateContext {
  const logicalDate = new TemplateDate(context.logicalDate);
  const dataIntervalStart = new TemplateDate(context.dataIntervalStart);
  const dataIntervalEnd = new TemplateDate(context.dataIntervalEnd);
  const optionalDate = (date: TaskContext['prevDataIntervalStartSuccess']): TemplateDate | undefined => (date ? new TemplateDate(date) : undefined);
  const ti = {
    dag_id: context.dagId,
    task_id: context.taskId,
    run_id: context.runId,
    try_number: context.tryNumber,
    max_tries: context.maxTries,
    map_index: -1,
  };
  return {
    ds: context.ds,
    ds_nodash: context.dsNodash,
    ts: context.ts,
    ts_nodash: context.tsNodash,
    ts_nodash_with_tz: context.tsNodash + '+0000',
    logical_date: logicalDate,
    data_interval_start: dataIntervalStart,
    data_interval_end: dataIntervalEnd,
    prev_data_interval_start_success: optionalDate(context.prevDataIntervalStartSuccess),
    prev_data_interval_end_success: optionalDate(context.prevDataIntervalEndSuccess),
    prev_start_date_success: optionalDate(context.prevStartDateSuccess),
    prev_end_date_success: optionalDate(context.prevEndDateSuccess),
    run_id: context.runId,
    dag_run: {
      dag_id: context.dagId,
      run_id: context.runId,
      run_type: context.runType,
      conf: context.conf,
      logical_date: logicalDate,
      data_interval_start: dataIntervalStart,
      data_interval_end: dataIntervalEnd,
    },
    conf: context.conf,
    params: context.params,
    ti,
    task_instance: ti,
    task: { task_id: context.taskId, dag_id: context.dagId },
    dag: { dag_id: context.dagId },
    task_instance_key_str: `${context.dagId}__${context.taskId}__${context.dsNodash}`,
  };
}
