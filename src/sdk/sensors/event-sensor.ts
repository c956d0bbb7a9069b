import { DEFAULT_EVENT_SINCE_SECONDS, eventPayload, ExternalEventTrigger, type ExternalEventTriggerKwargs } from '../../../triggers/external-event-trigger.ts';
import type { TaskContext } from '../context.ts';
import { durationSeconds } from '../trigger-kwargs.ts';
import { BaseSensorOperator, checkTriggerOptions, type BaseSensorOptions, type PokeResult, type SensorTriggerContext } from './base-sensor.ts';

export interface EventSensorOptions extends BaseSensorOptions, ExternalEventTriggerKwargs {}

/**
 * Waits for an external event of `key` (sent with `tsflow events send`, the API, or
 * `tsflow_send_event` in an application's transaction). Deferrable by default (`deferrable: false`
 * pokes the event table every `pokeInterval` instead). The wait began when the try started: an event
 * sent up to `since` (default 24 h) before that counts, so the sender need not wait for the task. Its
 * result (and XCom) is `{ eventId, key, payload, createdAt, sender }`.
 */
export class EventSensor extends BaseSensorOperator {
  readonly #kwargs: ExternalEventTriggerKwargs;
  readonly #sinceMs: number;

  constructor(options: EventSensorOptions) {
    super({ ...options, deferrable: options.deferrable ?? true });
    this.#kwargs = { key: options.key, ...(options.match === undefined ? {} : { match: options.match }) };
    checkTriggerOptions(options.taskId, () => new ExternalEventTrigger({ ...this.#kwargs, since: options.since ?? DEFAULT_EVENT_SINCE_SECONDS }));
    this.#sinceMs = durationSeconds(options.since ?? DEFAULT_EVENT_SINCE_SECONDS, `sensor '${options.taskId}' since`) * 1000;
  }

  override async poke(context: TaskContext): Promise<PokeResult> {
    if (!context.findEvent) throw new Error(`sensor '${this.taskId}': this task has no database to look for events in`);
    const trigger = this.trigger(context);
    const event = await context.findEvent(trigger.kwargs.key, trigger.notBefore, trigger.kwargs.match);
    if (!event) return false;
    context.log.info({ eventId: event.id, key: event.key }, 'external event found');
    return { done: true, value: eventPayload(event) };
  }

  /** The wait starts at the try's start: `since` looks back from there, the same in a poke and in the triggerer. */
  override trigger(context?: SensorTriggerContext): ExternalEventTrigger {
    const start = context?.startDate.toMillis() ?? Date.now();
    return new ExternalEventTrigger({ ...this.#kwargs, match: this.#kwargs.match ?? [], notBefore: new Date(start - this.#sinceMs).toISOString() });
  }
}
