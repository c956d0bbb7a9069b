import { Duration, type DurationLikeObject } from 'luxon';
import { toDuration } from '../sdk/duration.ts';
import { CronDataIntervalTimetable } from './cron-data-interval-timetable.ts';
import { DeltaDataIntervalTimetable } from './delta-data-interval-timetable.ts';
import { InvalidScheduleError, InvalidTimetableError } from './errors.ts';
import { ALL_PRESETS, CRON_PRESETS } from './presets.ts';
import { assertTimezone } from './timezone.ts';
import { isTimetable, type Timetable } from './timetable.ts';
import { ContinuousTimetable, NullTimetable, OnceTimetable } from './trivial-timetables.ts';

/**
 * What a DAG's `schedule` may be: a cron expression (5 fields, or 6 with seconds first), a preset
 * (`'@daily'`, `'@once'`, `'@continuous'`, …), a fixed interval (a luxon `Duration`, `{ hours: 1 }`,
 * an ISO 8601 duration such as `'PT1H'`, or a number of seconds), `null` (manual runs only), or a
 * `Timetable` object.
 */
export type ScheduleInput = string | Duration | DurationLikeObject | number | Timetable | null | undefined;

export interface ParseScheduleOptions {
  readonly dagId: string;
  /** The IANA zone cron expressions are evaluated in. @default 'UTC' */
  readonly timezone?: string;
}

/** Turns a DAG's `schedule` into its timetable, or throws an `InvalidScheduleError` naming the DAG. */
export function parseSchedule(value: ScheduleInput, options: ParseScheduleOptions): Timetable {
  const { dagId } = options;
  const timezone = options.timezone ?? 'UTC';
  try {
    assertTimezone(timezone);
  } catch (error) {
    throw wrap(dagId, 'timezone', `timezone ${(error as Error).message}`, error);
  }
  if (value === null || value === undefined) return new NullTimetable();
  if (isTimetable(value)) return value;
  if (typeof value === 'string') return parseString(value.trim(), dagId, timezone);
  return delta(value, dagId);
}

function parseString(value: string, dagId: string, timezone: string): Timetable {
  if (value === '@once') return new OnceTimetable();
  if (value === '@continuous') return new ContinuousTimetable();
  if (value.startsWith('@') && CRON_PRESETS[value] === undefined) {
    throw new InvalidScheduleError(
      dagId,
      'schedule',
      `schedule '${value}' is not a known preset; write one of ${ALL_PRESETS.join(', ')}, or a cron expression such as '0 0 */14 * *'`,
    );
  }
  if (/^P/i.test(value)) return delta(value, dagId);
  try {
    return new CronDataIntervalTimetable(value, timezone);
  } catch (error) {
    throw wrap(dagId, 'schedule', `schedule ${(error as Error).message}`, error);
  }
}

function delta(value: string | Duration | DurationLikeObject | number, dagId: string): Timetable {
  let duration: Duration;
  try {
    duration = toDuration(value, 'schedule');
  } catch (error) {
    throw wrap(dagId, 'schedule', `${(error as Error).message}; write a positive interval such as { hours: 1 }, 'PT1H' or 3600`, error);
  }
  if (duration.toMillis() <= 0) {
    throw new InvalidScheduleError(
      dagId,
      'schedule',
      `schedule ${describe(value)} is a zero interval; write a positive interval such as { hours: 1 }, 'PT1H' or 3600, or null for manual runs only`,
    );
  }
  try {
    return new DeltaDataIntervalTimetable(duration);
  } catch (error) {
    throw wrap(dagId, 'schedule', `schedule ${(error as Error).message}`, error);
  }
}

function describe(value: string | Duration | DurationLikeObject | number): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number') return `${value} (seconds)`;
  if (Duration.isDuration(value)) return value.toISO() ?? 'Duration';
  return JSON.stringify(value);
}

function wrap(dagId: string, field: string, message: string, cause: unknown): InvalidScheduleError {
  if (!(cause instanceof InvalidTimetableError) && !(cause instanceof RangeError)) throw cause;
  return new InvalidScheduleError(dagId, field, message, { cause });
}
