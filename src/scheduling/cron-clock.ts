import { Cron, CronPattern } from 'croner';
import { DateTime } from 'luxon';
import { InvalidTimetableError } from './errors.ts';
import { assertTimezone } from './timezone.ts';

/**
 * A cron expression evaluated in a time zone the way Airflow does it (`timetables/_cron.py`):
 *
 * - The expression is matched against **naive wall-clock time** in the zone (croner runs in UTC on
 *   wall-clock fields, so it never sees a DST change), and the result is turned back into an instant.
 * - Expressions whose hour field covers every hour (`0 * * * *`, `*\/15 * * * *`) instead step by the
 *   wall-clock distance from the current instant, so they keep their spacing in absolute time: across
 *   fall-back the repeated hour runs twice, across spring-forward nothing is skipped or doubled.
 * - Other expressions (`30 2 * * *`) localise the wall-clock result: a time that does not exist
 *   (02:30 on spring-forward) moves forward by the length of the gap (to 03:30), as pendulum's
 *   `convert` does for Airflow; a time that occurs twice is taken at its **second** occurrence, as
 *   Airflow's `make_aware` asks with `fold=1`.
 *
 * Day-of-month and day-of-week combine with OR when both are restricted (Vixie cron and croniter).
 * Only whole seconds count: sub-second parts of the instants passed in are handled as such.
 */
export class CronClock {
  readonly expression: string;
  readonly timezone: string;
  readonly #cron: Cron;
  readonly #coversEveryHour: boolean;

  constructor(expression: string, timezone: string) {
    assertTimezone(timezone);
    const options = { mode: '5-or-6-parts', domAndDow: false, paused: true, utcOffset: 0 } as const;
    try {
      const pattern = new CronPattern(expression, 'UTC', { mode: options.mode });
      this.#coversEveryHour = pattern.hour.every((hit) => hit === 1);
      this.#cron = new Cron(expression, options);
    } catch (error) {
      const reason = error instanceof Error ? error.message.replace(/^CronPattern: /, '') : String(error);
      throw new InvalidTimetableError(
        `'${expression}' is not a valid cron expression: ${reason}; write 5 fields (minute hour day month weekday, e.g. '0 0 * * *'), 6 with seconds first, or a preset such as '@daily'`,
        { cause: error },
      );
    }
    this.expression = expression;
    this.timezone = timezone;
  }

  /** The first tick strictly after `current`. */
  next(current: DateTime): DateTime {
    const naive = this.#naive(current);
    let reference = naive.startOf('second').toJSDate();
    // A wall-clock tick can land before `current` once localised (the second 02:30 of a fall-back
    // day is taken for a fixed-time cron); then the tick after it is the answer.
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const scheduled = this.#cron.nextRun(reference);
      if (scheduled === null) break;
      const result = this.#fromNaive(current, naive, DateTime.fromJSDate(scheduled, { zone: 'utc' }));
      if (result > current) return result;
      reference = scheduled;
    }
    throw new InvalidTimetableError(`cron '${this.expression}' has no tick after ${current.toISO() ?? ''}`);
  }

  /** The last tick strictly before `current`. */
  prev(current: DateTime): DateTime {
    const naive = this.#naive(current);
    let reference = (naive.millisecond === 0 ? naive : naive.startOf('second').plus({ seconds: 1 })).toJSDate();
    // A wall-clock tick can land after `current` once localised (02:30 in a spring-forward gap
    // becomes 03:30, after 03:10); then the tick before it is the answer.
    for (let attempt = 0; attempt < 4; attempt += 1) {
      const [scheduled] = this.#cron.previousRuns(1, reference);
      if (scheduled === undefined) break;
      const result = this.#fromNaive(current, naive, DateTime.fromJSDate(scheduled, { zone: 'utc' }));
      if (result < current) return result;
      reference = scheduled;
    }
    throw new InvalidTimetableError(`cron '${this.expression}' has no tick before ${current.toISO() ?? ''}`);
  }

  /** `current` if it is a tick, else the next tick (Airflow's `_align_to_next`). */
  alignToNext(current: DateTime): DateTime {
    const next = this.next(current);
    return this.prev(next).equals(current.toUTC()) ? current.toUTC() : next;
  }

  /** `current` if it is a tick, else the previous tick (Airflow's `_align_to_prev`). */
  alignToPrev(current: DateTime): DateTime {
    const prev = this.prev(current);
    return this.next(prev).equals(current.toUTC()) ? current.toUTC() : prev;
  }

  /** The wall-clock time of `instant` in the zone, as a UTC DateTime with the same fields. */
  #naive(instant: DateTime): DateTime {
    return instant.setZone(this.timezone).setZone('utc', { keepLocalTime: true });
  }

  #fromNaive(current: DateTime, naive: DateTime, scheduled: DateTime): DateTime {
    if (this.#coversEveryHour) {
      // Step by the wall-clock distance from the absolute instant (Airflow's rule for hourly crons).
      return current.toUTC().plus({ milliseconds: scheduled.toMillis() - naive.toMillis() });
    }
    const local = scheduled.setZone(this.timezone, { keepLocalTime: true });
    // luxon moves a nonexistent time forward by the gap; of a repeated time, take the later instant.
    const candidates = local.getPossibleOffsets();
    const latest = candidates.reduce((a, b) => (b.toMillis() > a.toMillis() ? b : a), local);
    return latest.toUTC();
  }
}
