import { IANAZone, type DateTime } from 'luxon';
import { InvalidScheduleError } from './errors.ts';
import { parseSchedule, type ScheduleInput } from './parse-schedule.ts';
import type { Timetable } from './timetable.ts';
import { ContinuousTimetable } from './trivial-timetables.ts';

/** A DAG's scheduling options as the author wrote them. */
export interface ScheduleOptions {
  readonly dagId: string;
  /** @default null (manual runs only) */
  readonly schedule?: ScheduleInput;
  /** Required with a periodic schedule and with `@continuous`. */
  readonly startDate?: DateTime;
  readonly endDate?: DateTime;
  /** IANA zone for cron expressions. @default startDate's zone when it is an IANA zone, else 'UTC' */
  readonly timezone?: string;
  /** @default false (Airflow 3) */
  readonly catchup?: boolean;
  /** Checked against the timetable's limit (`@continuous` allows 1). */
  readonly maxActiveRuns?: number;
}

/** The options, checked: what the scheduler and the DAG processor work from. */
export interface CompiledSchedule {
  readonly timetable: Timetable;
  readonly timezone: string;
  readonly startDate?: DateTime;
  readonly endDate?: DateTime;
  readonly catchup: boolean;
}

/** Checks a DAG's scheduling options together; every error names the DAG and the field. */
export function validateScheduleOptions(options: ScheduleOptions): CompiledSchedule {
  const { dagId, startDate, endDate } = options;
  const catchup = options.catchup ?? false;
  checkDate(dagId, 'startDate', startDate);
  checkDate(dagId, 'endDate', endDate);
  const timezone = options.timezone ?? zoneOf(startDate);
  const timetable = parseSchedule(options.schedule, { dagId, timezone });

  if (startDate === undefined && (timetable.periodic || timetable instanceof ContinuousTimetable)) {
    throw new InvalidScheduleError(
      dagId,
      'startDate',
      `startDate is required with schedule '${timetable.summary}'; write e.g. startDate: DateTime.fromISO('2026-01-01T00:00:00Z'), or schedule: null for manual runs only`,
    );
  }
  if (startDate !== undefined && endDate !== undefined && startDate > endDate) {
    throw new InvalidScheduleError(
      dagId,
      'endDate',
      `endDate ${endDate.toUTC().toISO() ?? ''} is before startDate ${startDate.toUTC().toISO() ?? ''}; write an endDate at or after the startDate, or leave it out`,
    );
  }
  if (catchup && timetable.canBeScheduled && startDate === undefined) {
    // Airflow's `_validate_catchup`: catching up needs a point to catch up from.
    throw new InvalidScheduleError(dagId, 'catchup', `catchup: true needs a startDate to catch up from; add a startDate or write catchup: false`);
  }
  const limit = timetable.maxActiveRunsLimit;
  if (limit !== undefined && options.maxActiveRuns !== undefined && options.maxActiveRuns > limit) {
    throw new InvalidScheduleError(
      dagId,
      'maxActiveRuns',
      `maxActiveRuns ${options.maxActiveRuns} is more than schedule '${timetable.summary}' allows; write maxActiveRuns: ${limit}`,
    );
  }
  return { timetable, timezone, catchup, ...(startDate && { startDate: startDate.toUTC() }), ...(endDate && { endDate: endDate.toUTC() }) };
}

function checkDate(dagId: string, field: string, value: DateTime | undefined): void {
  if (value === undefined || value.isValid) return;
  throw new InvalidScheduleError(dagId, field, `${field} is not a valid date (${value.invalidExplanation ?? value.invalidReason ?? 'invalid'}); write e.g. DateTime.fromISO('2026-01-01T00:00:00Z')`);
}

function zoneOf(date: DateTime | undefined): string {
  if (date === undefined || date.zone.type !== 'iana') return 'UTC';
  return IANAZone.isValidZone(date.zoneName ?? '') ? (date.zoneName ?? 'UTC') : 'UTC';
}
