import { DateTime } from 'luxon';
import { sleepUntil } from '../src/common/sleep.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { BaseTrigger, TriggerEvent, type TriggerRuntime } from '../src/sdk/trigger.ts';

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
 * 10 s / 1 s steps). A moment in the past fires at once. It keeps the moment as epoch milliseconds and
 * builds no luxon objects while it waits: a triggerer holds 100,000 of these.
 */
export class DateTimeTrigger extends BaseTrigger<{ moment: string }> {
  static override readonly classpath: string = 'tsflow.triggers.DateTimeTrigger';
  readonly #at: number;

  constructor(kwargs: DateTimeTriggerKwargs) {
    const at = parseMoment(kwargs?.moment, new.target.name);
    super({ moment: new Date(at).toISOString() });
    this.#at = at;
  }

  /** The moment, as a luxon DateTime in UTC. */
  get moment(): DateTime {
    return DateTime.fromMillis(this.#at, { zone: 'utc' });
  }

  override run(signal: AbortSignal, runtime?: TriggerRuntime): Promise<TriggerEvent<DateTimeEventPayload> | undefined> {
    const wait = runtime ? runtime.sleepUntil(this.#at, signal) : sleepUntil(this.#at, signal);
    return wait.then(() =>
      signal.aborted ? undefined : TriggerEvent.trusted({ moment: this.kwargs.moment, firedAt: new Date().toISOString() }),
    );
  }

  override dueAt(): DateTime {
    return this.moment;
  }

  override dueAtMillis(): number {
    return this.#at;
  }
}

/** Epoch ms of a moment. ISO strings with an offset take the fast path (Date.parse); others go through luxon. */
function parseMoment(value: unknown, owner: string): number {
  let ms: number;
  if (typeof value === 'string' && ISO_WITH_OFFSET.test(value)) ms = Date.parse(value);
  else if (DateTime.isDateTime(value)) ms = value.isValid ? value.toMillis() : Number.NaN;
  else if (value instanceof Date) ms = value.getTime();
  else if (typeof value === 'string') ms = DateTime.fromISO(value, { zone: 'utc' }).toMillis();
  else throw new InvalidTriggerKwargsError(`${owner} moment is required: a luxon DateTime, a Date or an ISO 8601 string, got ${String(value)}`);
  if (!Number.isFinite(ms)) {
    throw new InvalidTriggerKwargsError(`${owner} moment ${JSON.stringify(String(value))} is not a valid date-time: use ISO 8601, e.g. 2026-01-01T12:00:00Z`);
  }
  return ms;
}

const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
