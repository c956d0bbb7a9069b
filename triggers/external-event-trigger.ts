import type { DurationInput } from '../src/sdk/duration.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { normaliseJsonConditions, type JsonFieldCondition } from '../src/sdk/http-expectation.ts';
import type { JsonValue } from '../src/sdk/json.ts';
import { durationSeconds, refuseUnknownFields } from '../src/sdk/trigger-kwargs.ts';
import { BaseTrigger, TriggerEvent, type ExternalEvent, type TriggerRuntime } from '../src/sdk/trigger.ts';

/** How far back a wait looks by default: the events' retention window. */
export const DEFAULT_EVENT_SINCE_SECONDS = 24 * 3600;

export interface ExternalEventTriggerKwargs {
  /** The event key to wait for (1-250 characters), e.g. `'order-42-paid'`. */
  key: string;
  /**
   * Only an event whose payload has these fields equal to these values counts: `{ path, equals }` or
   * an array of them (all must hold), as `HttpPollTrigger`'s `expect.json`. @default any event of the key
   */
  match?: JsonFieldCondition | JsonFieldCondition[];
  /**
   * An event sent up to this long before the wait began counts too, so the sender need not wait for
   * the waiter. @default 24 hours (the retention window: older events are deleted anyway)
   */
  since?: DurationInput;
}

/** The kwargs as stored in the trigger row: `since` became the absolute `notBefore`, so a restart never widens the window. */
export type ExternalEventTriggerRow = { key: string; match: JsonFieldCondition[]; notBefore: string };

/** The event (and a sensor's XCom): the external event that resumed the task. */
export type ExternalEventPayload = { [field: string]: JsonValue; eventId: number; key: string; payload: JsonValue; createdAt: string; sender: string | null };

/**
 * Waits for an external event of `key` (Inngest's `waitForEvent`, but transactional: an application
 * sends with `tsflow_send_event` inside its own transaction). Runs only in a triggerer, on its one
 * shared LISTEN: a committed event wakes every waiter of its key within milliseconds.
 */
export class ExternalEventTrigger extends BaseTrigger<ExternalEventTriggerRow> {
  static override readonly classpath: string = 'tsflow.triggers.ExternalEventTrigger';

  constructor(kwargs: ExternalEventTriggerKwargs | ExternalEventTriggerRow) {
    super(normalise(kwargs, new.target.name));
  }

  /** Epoch ms: events created before this do not count. */
  get notBefore(): number {
    return Date.parse(this.kwargs.notBefore);
  }

  override async run(signal: AbortSignal, runtime?: TriggerRuntime): Promise<TriggerEvent<ExternalEventPayload> | undefined> {
    if (!runtime?.waitForEvent) {
      throw new Error(`${this.constructor.name} for key '${this.kwargs.key}' runs only in a triggerer (it needs the triggerer's event watcher); use EventSensor to poke from a worker`);
    }
    const event = await runtime.waitForEvent(this.kwargs.key, this.notBefore, this.kwargs.match, signal);
    if (!event) return undefined;
    this.log.info({ eventId: event.id, key: event.key }, 'external event received');
    return TriggerEvent.trusted(eventPayload(event));
  }
}

/** An external event as a trigger event (and XCom). */
export function eventPayload(event: ExternalEvent): ExternalEventPayload {
  return { eventId: event.id, key: event.key, payload: event.payload, createdAt: event.createdAt, sender: event.sender };
}

function normalise(input: ExternalEventTriggerKwargs | ExternalEventTriggerRow, owner: string): ExternalEventTriggerRow {
  if (typeof input !== 'object' || input === null) throw new InvalidTriggerKwargsError(`${owner} needs { key, match?, since? }, got ${String(input)}`);
  refuseUnknownFields(input, ['key', 'match', 'since', 'notBefore'], owner);
  const given = input as Partial<ExternalEventTriggerKwargs> & Partial<ExternalEventTriggerRow>;
  const key = given.key;
  // eslint-disable-next-line no-control-regex
  if (typeof key !== 'string' || key.length === 0 || key.length > 250 || /[\u0000-\u001f\u007f]/.test(key)) {
    throw new InvalidTriggerKwargsError(`${owner} key must be 1 to 250 printable characters, got ${JSON.stringify(key)?.slice(0, 80)}`);
  }
  const match = normaliseJsonConditions(given.match, `${owner} match`);
  if (given.notBefore !== undefined && given.since !== undefined) throw new InvalidTriggerKwargsError(`${owner} takes since or notBefore, not both`);
  let notBefore: string;
  if (given.notBefore !== undefined) {
    if (typeof given.notBefore !== 'string' || Number.isNaN(Date.parse(given.notBefore))) {
      throw new InvalidTriggerKwargsError(`${owner} notBefore must be an ISO 8601 timestamp, got ${JSON.stringify(given.notBefore)}`);
    }
    notBefore = new Date(Date.parse(given.notBefore)).toISOString();
  } else {
    const seconds = given.since === undefined ? DEFAULT_EVENT_SINCE_SECONDS : durationSeconds(given.since, `${owner} since`);
    notBefore = new Date(Date.now() - seconds * 1000).toISOString();
  }
  return { key, match, notBefore };
}
