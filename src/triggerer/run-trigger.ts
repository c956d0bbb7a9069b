import type { JsonObject } from '../sdk/json.ts';
import { maskText } from '../secrets/masker.ts';
import type { BaseTrigger, TriggerEvent, TriggerRuntime } from '../sdk/trigger.ts';

/**
 * Starts a trigger and resolves with its first event, or undefined if it ended without one. An async
 * iterator is closed after its first event so its `finally` blocks run. No wrapper frames or extra
 * listeners: with 100,000 triggers waiting, every object kept per wait counts. Cancellation is the
 * caller's business (it aborts the signal and stops caring about this promise).
 */
export function firstEvent(trigger: BaseTrigger, signal: AbortSignal, runtime?: TriggerRuntime): Promise<TriggerEvent | undefined> {
  const run = trigger.run(signal, runtime);
  if (isAsyncIterable(run)) {
    const iterator = run[Symbol.asyncIterator]();
    return iterator.next().then((step) => {
      Promise.resolve(iterator.return?.()).catch(() => undefined);
      return step.done ? undefined : asEvent(step.value, trigger);
    });
  }
  return Promise.resolve(run).then((value) => (value ? asEvent(value, trigger) : undefined));
}

function isAsyncIterable(value: unknown): value is AsyncIterable<TriggerEvent> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function asEvent(value: unknown, trigger: BaseTrigger): TriggerEvent {
  if (typeof value === 'object' && value !== null && 'payload' in value) return value as TriggerEvent;
  throw new TypeError(`${trigger.constructor.name} produced ${String(value)}, not a TriggerEvent: yield new TriggerEvent(payload)`);
}

/** The `next_kwargs` of a task whose trigger failed: the error and its stack, as Airflow stores them. */
export function failurePayload(error: unknown): JsonObject {
  if (error instanceof Error) {
    return { error: maskText(`${error.name}: ${error.message}`), traceback: maskText(error.stack ?? '') };
  }
  return { error: maskText(String(error)), traceback: '' };
}
