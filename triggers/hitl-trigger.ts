import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import type { JsonValue } from '../src/sdk/json.ts';
import { refuseUnknownFields } from '../src/sdk/trigger-kwargs.ts';
import { BaseTrigger, TriggerEvent, type TriggerRuntime } from '../src/sdk/trigger.ts';

export interface HITLTriggerKwargs {
  /** The wake-up event's key (`hitl:<dag>/<run>/<task>[i]`), which answering the request sends. */
  eventKey: string;
  /** ISO 8601: when the request was stored; an answer event older than that belongs to an earlier try. */
  notBefore: string;
}

/** The event: the answer as sent with the wake-up (the resumed task reads the stored one). */
export type HITLEventPayload = { [field: string]: JsonValue; answered: true; eventId: number; answer: JsonValue };

/**
 * Waits for the answer to a human-in-the-loop request (Airflow's `HITLTrigger`). Answering sends the
 * event `eventKey` in the answering transaction, so the triggerer's shared LISTEN wakes this trigger
 * within milliseconds; no polling. The timeout is the deferral's: the triggerer's timeout handling
 * resumes the task, which then takes the request's defaults or fails.
 */
export class HITLTrigger extends BaseTrigger<{ eventKey: string; notBefore: string }> {
  static override readonly classpath: string = 'tsflow.triggers.HITLTrigger';

  constructor(kwargs: HITLTriggerKwargs) {
    super(normalise(kwargs));
  }

  override async run(signal: AbortSignal, runtime?: TriggerRuntime): Promise<TriggerEvent<HITLEventPayload> | undefined> {
    if (!runtime?.waitForEvent) {
      throw new Error(`HITLTrigger for '${this.kwargs.eventKey}' runs only in a triggerer (it needs the triggerer's event watcher)`);
    }
    const event = await runtime.waitForEvent(this.kwargs.eventKey, Date.parse(this.kwargs.notBefore), [], signal);
    if (!event) return undefined;
    this.log.info({ eventId: event.id, key: event.key, respondedBy: event.sender }, 'HITL request answered');
    return TriggerEvent.trusted({ answered: true, eventId: event.id, answer: event.payload });
  }
}

function normalise(input: HITLTriggerKwargs): HITLTriggerKwargs {
  if (typeof input !== 'object' || input === null) throw new InvalidTriggerKwargsError(`HITLTrigger needs { eventKey, notBefore }, got ${String(input)}`);
  refuseUnknownFields(input, ['eventKey', 'notBefore'], 'HITLTrigger');
  const { eventKey, notBefore } = input;
  if (typeof eventKey !== 'string' || !eventKey.startsWith('hitl:') || eventKey.length > 250) {
    throw new InvalidTriggerKwargsError(`HITLTrigger eventKey must be 'hitl:…' (at most 250 characters), got ${JSON.stringify(eventKey)?.slice(0, 80)}`);
  }
  if (typeof notBefore !== 'string' || Number.isNaN(Date.parse(notBefore))) {
    throw new InvalidTriggerKwargsError(`HITLTrigger notBefore must be an ISO 8601 timestamp, got ${JSON.stringify(notBefore)}`);
  }
  return { eventKey, notBefore: new Date(Date.parse(notBefore)).toISOString() };
}
