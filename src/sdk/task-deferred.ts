import type { Duration } from 'luxon';
import { toDuration, type DurationInput } from './duration.ts';
import { brand } from './errors.ts';
import { toJsonObject, type JsonObject } from './json.ts';
import { EVENT_KEY } from './resume-keys.ts';
import { isTrigger, type BaseTrigger } from './trigger.ts';

export interface DeferOptions {
  trigger: BaseTrigger;
  /** The method to resume in; it is called as `method(context, event, kwargs)`. */
  method?: string;
  /** Plain JSON handed to the resume method as its third argument. */
  kwargs?: JsonObject;
  /** Fail the task (TaskDeferralTimeout) if the trigger has not fired by then. */
  timeout?: DurationInput;
}

/**
 * Thrown by `BaseOperator.defer()`. The runner catches it and, in one transaction, stores the trigger
 * and sets the task instance `deferred`. It is control flow, not a failure: do not catch it.
 */
export class TaskDeferred extends Error {
  override name = 'TaskDeferred';
  readonly trigger: BaseTrigger;
  readonly method: string;
  readonly kwargs: JsonObject;
  readonly timeout: Duration | undefined;

  constructor(options: DeferOptions) {
    const { trigger, method = 'executeComplete', kwargs = {}, timeout } = options;
    if (!isTrigger(trigger)) {
      throw new TypeError(`defer() needs a trigger (an instance of a BaseTrigger subclass), got ${String(trigger)}`);
    }
    if (typeof method !== 'string' || method === '' || method.startsWith('__')) {
      throw new TypeError(`defer() method must name a method of the operator, got '${String(method)}'`);
    }
    const json = toJsonObject(kwargs, 'defer() kwargs');
    if (EVENT_KEY in json) {
      throw new TypeError(`defer() kwargs may not contain the key '${EVENT_KEY}': the trigger's event is passed separately`);
    }
    super(`deferred to ${trigger.constructor.name}, resuming in ${method}`);
    this.trigger = trigger;
    this.method = method;
    this.kwargs = json;
    this.timeout = timeout === undefined ? undefined : toDuration(timeout, 'defer() timeout');
  }
}

brand(TaskDeferred.prototype, 'defer');
