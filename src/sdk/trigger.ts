import type { DateTime } from 'luxon';
import { toJsonObject, toJsonValue, type JsonObject, type JsonValue } from './json.ts';

/** What a trigger yields when the wait is over. Its payload reaches the resume method as `event`. */
export class TriggerEvent<P extends JsonValue = JsonValue> {
  readonly payload: P;
  constructor(payload: P) {
    this.payload = toJsonValue(payload, 'TriggerEvent payload') as P;
  }
}

/** What `run()` may return: an async iterable of events (the first one counts) or a single event. */
export type TriggerRun = AsyncIterable<TriggerEvent> | Promise<TriggerEvent | undefined | void>;

/** The constructor shape the triggerer needs to rebuild a trigger from its row. */
export interface TriggerClass {
  new (kwargs: JsonObject): BaseTrigger;
  /** The name a trigger row stores; unique across the built-ins and the triggers folders. */
  readonly classpath?: string;
}

const TRIGGER_BRAND = Symbol.for('tsflow.trigger');

/**
 * Where a trigger logs (a pino logger fits). Never pass secrets, such as header values, in `fields`.
 */
export interface TriggerLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** Discards everything: a trigger's logger until its host attaches one. Frozen: shared, never changed. */
const DISCARD: TriggerLogger = Object.freeze({ debug() {}, info() {}, warn() {} });

/**
 * A serialisable wait. Subclasses take their kwargs (plain JSON) in the constructor, validate them
 * there, and implement `run(signal)`. The triggerer rebuilds them from `serialize()` in another
 * process, so everything a trigger needs must be in its kwargs.
 *
 * `run` must not block the event loop: thousands of triggers share it. It should stop promptly when
 * `signal` aborts; `cleanup()` runs after it stops, whether it fired, failed or was cancelled.
 */
export abstract class BaseTrigger<K extends JsonObject = JsonObject> {
  /** Overridden by each trigger class; defaults to the class name. */
  static readonly classpath?: string;
  static readonly [TRIGGER_BRAND] = true;

  readonly kwargs: K;
  #log: TriggerLogger = DISCARD;

  constructor(kwargs: K) {
    this.kwargs = toJsonObject(kwargs, `${new.target.name} kwargs`) as K;
  }

  /** The logger attached with `useLogger`; by default one that discards. */
  protected get log(): TriggerLogger {
    return this.#log;
  }

  /**
   * Routes this trigger's logs to `log` (the task's logger when a sensor pokes with the trigger on a
   * worker, the triggerer's per-trigger logger when it runs there). Returns the trigger.
   */
  useLogger(log: TriggerLogger): this {
    this.#log = log;
    return this;
  }

  /** `[classpath, kwargs]`: what is stored in the trigger row. */
  serialize(): [string, JsonObject] {
    return [classpathOf(this.constructor as TriggerClass), this.kwargs];
  }

  abstract run(signal: AbortSignal): TriggerRun;

  /** Runs after `run` ends for any reason: release sockets, watchers, timers. */
  cleanup(): void | Promise<void> {}

  /** For time-based triggers: when the trigger is due (shown by `tsflow triggers list`, used for lateness). */
  dueAt(): DateTime | undefined {
    return undefined;
  }
}

export function classpathOf(cls: TriggerClass): string {
  return Object.prototype.hasOwnProperty.call(cls, 'classpath') && cls.classpath ? cls.classpath : cls.name;
}

/** True for classes that extend `BaseTrigger`, even when loaded from another copy of tsflow. */
export function isTriggerClass(value: unknown): value is TriggerClass {
  if (typeof value !== 'function') return false;
  return (value as unknown as Record<symbol, unknown>)[TRIGGER_BRAND] === true && value !== BaseTrigger;
}

export function isTrigger(value: unknown): value is BaseTrigger {
  return typeof value === 'object' && value !== null && isTriggerClass(value.constructor);
}
