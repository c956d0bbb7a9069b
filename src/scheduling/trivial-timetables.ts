import type { DateTime } from 'luxon';
import { exactRun, intervalRun, type DataInterval, type RunInfo, type SerializedTimetable, type TimeRestriction, type Timetable } from './timetable.ts';

/** A manual run of a DAG without periods covers nothing: a zero-length interval at the trigger time. */
function exactInterval(runAfter: DateTime): DataInterval {
  const at = runAfter.toUTC();
  return { start: at, end: at };
}

/** `schedule: null`: the scheduler never creates a run; runs are triggered by hand (Airflow's `NullTimetable`). */
export class NullTimetable implements Timetable {
  readonly summary = 'None';
  readonly periodic = false;
  readonly canBeScheduled = false;

  nextRun(): RunInfo | undefined {
    return undefined;
  }

  inferManualInterval(runAfter: DateTime): DataInterval {
    return exactInterval(runAfter);
  }

  serialize(): SerializedTimetable {
    return { kind: 'null' };
  }
}

/**
 * `@once`: one run at `startDate` (or at `now` without one), whatever `catchup` says, and never
 * another (Airflow's `OnceTimetable`). Its interval has zero length.
 */
export class OnceTimetable implements Timetable {
  readonly summary = '@once';
  readonly periodic = false;
  readonly canBeScheduled = true;

  nextRun(last: DataInterval | undefined, restriction: TimeRestriction, now: DateTime): RunInfo | undefined {
    if (last !== undefined) return undefined;
    const at = (restriction.earliest ?? now).toUTC();
    if (restriction.latest !== undefined && at > restriction.latest) return undefined;
    return exactRun(at);
  }

  inferManualInterval(runAfter: DateTime): DataInterval {
    return exactInterval(runAfter);
  }

  serialize(): SerializedTimetable {
    return { kind: 'once' };
  }
}

/**
 * `@continuous`: a new run as soon as the previous one is created, covering `[last.end, now]`
 * (Airflow's `ContinuousTimetable`). Only one run may be active at once, so a DAG using it must have
 * `maxActiveRuns: 1`; the scheduler creates the next run when the active one finishes.
 */
export class ContinuousTimetable implements Timetable {
  readonly summary = '@continuous';
  readonly periodic = false;
  readonly canBeScheduled = true;
  readonly maxActiveRunsLimit = 1;

  nextRun(last: DataInterval | undefined, restriction: TimeRestriction, now: DateTime): RunInfo | undefined {
    const current = now.toUTC();
    if (restriction.latest !== undefined && restriction.latest < current) return undefined;
    if (last !== undefined) return intervalRun(last.end.toUTC(), current);
    if (restriction.earliest === undefined) return undefined;
    const start = restriction.earliest.toUTC();
    // The first run is never due before startDate.
    return intervalRun(start, start > current ? start : current);
  }

  inferManualInterval(runAfter: DateTime): DataInterval {
    return exactInterval(runAfter);
  }

  serialize(): SerializedTimetable {
    return { kind: 'continuous' };
  }
}
