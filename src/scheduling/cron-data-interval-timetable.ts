import type { DateTime } from 'luxon';
import { CronClock } from './cron-clock.ts';
import { InvalidTimetableError } from './errors.ts';
import { CRON_PRESETS } from './presets.ts';
import { intervalRun, type DataInterval, type RunInfo, type SerializedTimetable, type TimeRestriction, type Timetable } from './timetable.ts';

/**
 * Runs once per cron period, each run covering the period between two ticks and created when the
 * period ends (Airflow's `CronDataIntervalTimetable`): `@daily` makes the run for 1 May at midnight
 * starting 2 May. The expression is evaluated in `timezone`; see `CronClock` for daylight saving.
 */
export class CronDataIntervalTimetable implements Timetable {
  readonly periodic = true;
  readonly canBeScheduled = true;
  /** The expression as given: a cron or a preset such as `'@daily'`. */
  readonly expression: string;
  readonly timezone: string;
  readonly #clock: CronClock;

  constructor(expression: string, timezone = 'UTC') {
    const cron = expression.startsWith('@') ? CRON_PRESETS[expression] : expression;
    if (cron === undefined) {
      throw new InvalidTimetableError(`'${expression}' is not a cron preset; write one of ${Object.keys(CRON_PRESETS).join(', ')}`);
    }
    this.#clock = new CronClock(cron, timezone);
    this.expression = expression;
    this.timezone = timezone;
  }

  get summary(): string {
    return this.timezone === 'UTC' ? this.expression : `${this.expression} (${this.timezone})`;
  }

  nextRun(last: DataInterval | undefined, restriction: TimeRestriction, now: DateTime): RunInfo | undefined {
    let earliest: DateTime | undefined;
    if (!restriction.catchup) earliest = this.#skipToLatest(restriction.earliest, now);
    else if (restriction.earliest !== undefined) earliest = this.#clock.alignToNext(restriction.earliest);

    let start: DateTime;
    if (last === undefined) {
      if (earliest === undefined) return undefined;
      start = earliest;
    } else {
      // Re-aligned, so a changed expression continues from the last run instead of drifting.
      const afterLast = this.#clock.alignToPrev(last.end);
      start = earliest !== undefined && earliest > afterLast ? earliest : afterLast;
    }
    if (restriction.latest !== undefined && start > restriction.latest) return undefined;
    return intervalRun(start, this.#clock.next(start));
  }

  /** The last complete period before `runAfter`: a manual `@daily` run at 01:00 gets yesterday. */
  inferManualInterval(runAfter: DateTime): DataInterval {
    const end = this.#clock.alignToPrev(runAfter);
    return { start: this.#clock.prev(end), end };
  }

  serialize(): SerializedTimetable {
    return { kind: 'cron', expression: this.expression, timezone: this.timezone };
  }

  /** The start of the latest complete period at `now` (ending at the last tick ≤ now), not before `earliest`. */
  #skipToLatest(earliest: DateTime | undefined, now: DateTime): DateTime {
    const latestStart = this.#clock.prev(this.#clock.alignToPrev(now));
    if (earliest === undefined) return latestStart;
    const alignedEarliest = this.#clock.alignToNext(earliest);
    return alignedEarliest > latestStart ? alignedEarliest : latestStart;
  }
}
