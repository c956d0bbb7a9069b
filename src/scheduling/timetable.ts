import type { DateTime } from 'luxon';

/**
 * The period of data a run processes: `[start, end)`. Both instants are UTC. A zero-length interval
 * (`start == end`) is what a run without a period gets (`@once`, a manual run of an unscheduled DAG).
 */
export interface DataInterval {
  readonly start: DateTime;
  readonly end: DateTime;
}

/** What a timetable says about the next run it wants (Airflow's `DagRunInfo`). */
export interface RunInfo {
  /** The earliest moment the run may be created: the end of its interval for data-interval timetables. */
  readonly runAfter: DateTime;
  readonly dataInterval: DataInterval;
  /** Always `dataInterval.start`. */
  readonly logicalDate: DateTime;
}

/**
 * Bounds the scheduler applies to a DAG's timetable (Airflow's `TimeRestriction`). Both bounds are
 * inclusive: a run whose logical date is exactly `latest` is still created.
 */
export interface TimeRestriction {
  /** The DAG's `startDate`. */
  readonly earliest?: DateTime;
  /** The DAG's `endDate`. */
  readonly latest?: DateTime;
  /** `true`: every missed interval since `earliest` is run; `false`: only the most recent one. */
  readonly catchup: boolean;
}

/** A timetable as the DAG processor stores it; `deserializeTimetable` turns the built-ins back. */
export type SerializedTimetable =
  | { readonly kind: 'cron'; readonly expression: string; readonly timezone: string }
  | { readonly kind: 'delta'; readonly seconds: number }
  | { readonly kind: 'once' }
  | { readonly kind: 'continuous' }
  | { readonly kind: 'null' }
  | { readonly kind: 'custom'; readonly name: string; readonly data: unknown };

/**
 * When a DAG's runs happen and which data interval each covers (Airflow's `Timetable`). Implement it
 * to schedule a DAG in a way cron and fixed intervals cannot express. Every method is pure: it reads
 * no clock (the caller passes `now`) and every `DateTime` it returns is in UTC.
 */
export interface Timetable {
  /** Shown by `tsflow dags list`, e.g. `'0 0 * * *'`, `'@daily'`, `'every 1h'`. */
  readonly summary: string;
  /** `true` when runs come at regular intervals, so a DAG using it needs a `startDate`. */
  readonly periodic: boolean;
  /** `false` when the scheduler never creates runs from it (`schedule: null`). */
  readonly canBeScheduled: boolean;
  /** The most runs that may be active at once, when the timetable imposes one (`@continuous`: 1). */
  readonly maxActiveRunsLimit?: number;

  /**
   * The next run to create after `last` (the data interval of the latest scheduled run, `undefined`
   * if there has been none), or `undefined` when there is no next run. The answer may be due in the
   * past (the scheduler creates it at once) or in the future (the scheduler sleeps until `runAfter`).
   */
  nextRun(last: DataInterval | undefined, restriction: TimeRestriction, now: DateTime): RunInfo | undefined;

  /** The data interval of a run triggered by hand at `runAfter`. */
  inferManualInterval(runAfter: DateTime): DataInterval;

  /** A JSON form a DAG processor can store; custom timetables return `{ kind: 'custom', … }`. */
  serialize(): SerializedTimetable;
}

/** A run for `[start, end)`, due when the interval ends. */
export function intervalRun(start: DateTime, end: DateTime): RunInfo {
  return { runAfter: end, dataInterval: { start, end }, logicalDate: start };
}

/** A run with a zero-length interval at `at`, due at `at`. */
export function exactRun(at: DateTime): RunInfo {
  return intervalRun(at, at);
}

/** True for anything shaped like a `Timetable` (duck-typed, so another copy of the SDK works too). */
export function isTimetable(value: unknown): value is Timetable {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<keyof Timetable, unknown>>;
  return (
    typeof candidate.nextRun === 'function' &&
    typeof candidate.inferManualInterval === 'function' &&
    typeof candidate.serialize === 'function' &&
    typeof candidate.summary === 'string'
  );
}
