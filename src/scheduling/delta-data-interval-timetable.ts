import { DateTime, Duration } from 'luxon';
import { InvalidTimetableError } from './errors.ts';
import { intervalRun, type DataInterval, type RunInfo, type SerializedTimetable, type TimeRestriction, type Timetable } from './timetable.ts';

/**
 * Runs at a fixed interval, each run covering one interval and created when it ends (Airflow's
 * `DeltaDataIntervalTimetable`). The interval is added to the absolute instant, so a `{ hours: 24 }`
 * schedule stays 24 hours apart across daylight-saving changes. Calendar units (months, years) have
 * no fixed length and are refused: use a cron preset such as `'@monthly'`.
 */
export class DeltaDataIntervalTimetable implements Timetable {
  readonly periodic = true;
  readonly canBeScheduled = true;
  readonly seconds: number;

  constructor(interval: Duration | number) {
    const duration = typeof interval === 'number' ? Duration.fromObject({ seconds: interval }) : interval;
    const calendar = duration.normalize();
    if (calendar.years !== 0 || calendar.quarters !== 0 || calendar.months !== 0) {
      throw new InvalidTimetableError(
        `interval ${duration.toISO() ?? ''} has calendar units (months or years) of no fixed length; write a cron preset such as '@monthly' or '@yearly' instead`,
      );
    }
    const seconds = duration.as('seconds');
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new InvalidTimetableError(`interval ${duration.toISO() ?? String(seconds)} must be longer than zero; write e.g. { hours: 1 } or 'PT1H'`);
    }
    this.seconds = seconds;
  }

  get summary(): string {
    const parts = Duration.fromObject({ seconds: this.seconds }).shiftTo('days', 'hours', 'minutes', 'seconds').toObject();
    const text = Object.entries(parts)
      .filter(([, amount]) => amount !== 0)
      .map(([unit, amount]) => `${amount}${unit[0] ?? ''}`)
      .join(' ');
    return `every ${text}`;
  }

  nextRun(last: DataInterval | undefined, restriction: TimeRestriction, now: DateTime): RunInfo | undefined {
    let earliest = restriction.earliest?.toUTC();
    if (!restriction.catchup) earliest = this.#skipToLatest(earliest, now);
    let start: DateTime;
    if (last === undefined) {
      if (earliest === undefined) return undefined;
      start = earliest;
    } else {
      const afterLast = last.end.toUTC();
      start = earliest !== undefined && earliest > afterLast ? earliest : afterLast;
    }
    if (restriction.latest !== undefined && start > restriction.latest) return undefined;
    return intervalRun(start, start.plus({ seconds: this.seconds }));
  }

  /** `[runAfter − interval, runAfter]`. */
  inferManualInterval(runAfter: DateTime): DataInterval {
    const end = runAfter.toUTC();
    return { start: end.minus({ seconds: this.seconds }), end };
  }

  serialize(): SerializedTimetable {
    return { kind: 'delta', seconds: this.seconds };
  }

  /** Airflow's rule: `now` floored to a multiple of the interval since the epoch, minus one interval. */
  #skipToLatest(earliest: DateTime | undefined, now: DateTime): DateTime {
    const ms = this.seconds * 1000;
    const floored = Math.floor(now.toMillis() / ms) * ms;
    const latestStart = DateTime.fromMillis(floored - ms, { zone: 'utc' });
    if (earliest === undefined) return latestStart;
    return earliest > latestStart ? earliest : latestStart;
  }
}
