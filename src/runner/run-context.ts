import { DateTime } from 'luxon';
import type { TryRunInfo } from '../db/run-info.ts';
import type { TaskContext } from '../sdk/context.ts';

/** The part of a task's context that comes from its run: dates, run type, previous success. */
export type RunContextFields = Pick<
  TaskContext,
  | 'logicalDate'
  | 'runType'
  | 'dataIntervalStart'
  | 'dataIntervalEnd'
  | 'ds'
  | 'dsNodash'
  | 'ts'
  | 'tsNodash'
  | 'prevDataIntervalStartSuccess'
  | 'prevDataIntervalEndSuccess'
  | 'prevStartDateSuccess'
  | 'prevEndDateSuccess'
  | 'conf'
>;

const utc = (date: Date): DateTime => DateTime.fromJSDate(date, { zone: 'utc' });
const utcOrUndefined = (date: Date | null | undefined): DateTime | undefined => (date ? utc(date) : undefined);

/** Python's `datetime.isoformat()` of a UTC instant: `2026-01-01T00:00:00+00:00`, microseconds only when non-zero. */
export function pythonIsoformat(date: DateTime): string {
  const u = date.toUTC();
  const fraction = u.millisecond === 0 ? '' : `.${String(u.millisecond).padStart(3, '0')}000`;
  return `${u.toFormat("yyyy-MM-dd'T'HH:mm:ss")}${fraction}+00:00`;
}

/**
 * Airflow's run-derived context keys. A run stored before runs had a data interval gets a
 * zero-length one at its logical date, which is what a manual run of an unscheduled DAG has too.
 */
export function runContextFields(run: TryRunInfo): RunContextFields {
  const logicalDate = utc(run.logicalDate);
  const prev = run.prevSuccess;
  return {
    logicalDate,
    runType: run.runType,
    dataIntervalStart: run.dataIntervalStart ? utc(run.dataIntervalStart) : logicalDate,
    dataIntervalEnd: run.dataIntervalEnd ? utc(run.dataIntervalEnd) : logicalDate,
    ds: logicalDate.toFormat('yyyy-MM-dd'),
    dsNodash: logicalDate.toFormat('yyyyMMdd'),
    ts: pythonIsoformat(logicalDate),
    tsNodash: logicalDate.toFormat("yyyyMMdd'T'HHmmss"),
    prevDataIntervalStartSuccess: utcOrUndefined(prev?.dataIntervalStart),
    prevDataIntervalEndSuccess: utcOrUndefined(prev?.dataIntervalEnd),
    prevStartDateSuccess: utcOrUndefined(prev?.startDate),
    prevEndDateSuccess: utcOrUndefined(prev?.endDate),
    conf: run.conf,
  };
}
