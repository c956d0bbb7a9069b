import type { JsonObject } from '../sdk/json.ts';
import type { BaseTrigger, TriggerEvent } from '../sdk/trigger.ts';

/**
 * Runs a trigger until its first event, its end, or `signal` aborting — whichever is first — and
 * returns that event (undefined if it ended or was aborted without one). An async iterator is closed
 * after its first event so its `finally` blocks run; a trigger that ignores the signal is not waited for.
 */
export async function firstEvent(trigger: BaseTrigger, signal: AbortSignal): Promise<TriggerEvent | undefined> {
  const aborted = new Promise<undefined>((resolve) => {
    if (signal.aborted) resolve(undefined);
    signal.addEventListener('abort', () => resolve(undefined), { once: true });
  });
  const run = trigger.run(signal);
  if (isAsyncIterable(run)) {
    const iterator = run[Symbol.asyncIterator]();
    const next = iterator.next();
    next.catch(() => undefined); // if we stop waiting (abort), a late rejection is not unhandled
    const step = await Promise.race([next, aborted]);
    Promise.resolve(iterator.return?.()).catch(() => undefined);
    if (!step || step.done) return undefined;
    return asEvent(step.value, trigger);
  }
  run.catch(() => undefined);
  const value = await Promise.race([run, aborted]);
  return value ? asEvent(value, trigger) : undefined;
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
    return { error: `${error.name}: ${error.message}`, traceback: error.stack ?? '' };
  }
  return { error: String(error), traceback: '' };
}
