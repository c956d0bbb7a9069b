import { DateTime } from 'luxon';
import { sleepUntil } from '../src/common/sleep.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { BaseTrigger, TriggerEvent } from '../src/sdk/trigger.ts';

export interface DateTimeTriggerKwargs {
  /** When to fire: a luxon `DateTime`, a JS `Date`, or an ISO 8601 string (no offset means UTC). */
  moment: DateTime | Date | string;
}

/** The event a time trigger yields. */
export interface DateTimeEventPayload {
  [key: string]: string;
  /** The moment the trigger was due, ISO 8601 UTC. */
  moment: string;
  /** When it actually fired, ISO 8601 UTC. */
  firedAt: string;
}

/**
 * Fires at `moment`, to the millisecond: one timer, no coarse steps (Airflow walks down in 1 h / 1 min /
 * 10 s / 1 s steps). A moment in the past fires at once.
 */
export class DateTimeTrigger extends BaseTrigger<{ moment: string }> {
  static override readonly classpath: string = 'tsflow.triggers.DateTimeTrigger';
  readonly moment: DateTime;

  constructor(kwargs: DateTimeTriggerKwargs) {
    const moment = parseMoment(kwargs?.moment, new.target.name);
    super({ moment: moment.toISO() as string });
    this.moment = moment;
  }

  override async run(signal: AbortSignal): Promise<TriggerEvent<DateTimeEventPayload> | undefined> {
    await sleepUntil(this.moment.toMillis(), signal);
    if (signal.aborted) return undefined;
    return new TriggerEvent({ moment: this.kwargs.moment, firedAt: DateTime.utc().toISO() as string });
  }

  override dueAt(): DateTime {
    return this.moment;
  }
}

function parseMoment(value: unknown, owner: string): DateTime {
  let moment: DateTime;
  if (DateTime.isDateTime(value)) moment = value;
  else if (value instanceof Date) moment = DateTime.fromJSDate(value);
  else if (typeof value === 'string') moment = DateTime.fromISO(value, { zone: 'utc' });
  else throw new InvalidTriggerKwargsError(`${owner} moment is required: a luxon DateTime, a Date or an ISO 8601 string, got ${String(value)}`);
  if (!moment.isValid) {
    throw new InvalidTriggerKwargsError(`${owner} moment ${JSON.stringify(String(value))} is not a valid date-time: ${moment.invalidExplanation ?? 'use ISO 8601, e.g. 2026-01-01T12:00:00Z'}`);
  }
  return moment.toUTC();
}
