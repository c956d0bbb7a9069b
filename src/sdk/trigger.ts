import type { DateTime } from 'luxon';
import type { Connection } from '../secrets/connection.ts';
import type { ExternalRunState, ExternalStateQuery } from './cross-dag.ts';
import { toJsonObject, toJsonValue, type JsonObject, type JsonValue } from './json.ts';

/** What a trigger yields when the wait is over. Its payload reaches the resume method as `event`. */
export class TriggerEvent<P extends JsonValue = JsonValue> {
  readonly payload: P;
  constructor(payload: P) {
    this.payload = toJsonValue(payload, 'TriggerEvent payload') as P;
  }

  /**
   * @internal For built-in triggers whose payload is plain JSON by construction: skips the defensive
   * copy, which shows in a burst of 100,000 events.
   */
  static trusted<P extends JsonValue>(payload: P): TriggerEvent<P> {
    const event = Object.create(TriggerEvent.prototype) as { payload: P };
    event.payload = payload;
    return event as TriggerEvent<P>;
  }
}

/** What `run()` may return: an async iterable of events (the first one counts) or a single event. */
export type TriggerRun = AsyncIterable<TriggerEvent> | Promise<TriggerEvent | undefined | void>;

/**
 * What the triggerer offers a running trigger (the optional second argument of `run`). Outside a
 * triggerer (a sensor poking on a worker, a unit test) it is absent: fall back to your own means.
 */
export interface TriggerRuntime {
  /**
   * Resolves at wall-clock `epochMs`, or at once when `signal` aborts. Backed by one shared timer:
   * far cheaper than a `setTimeout` per trigger when a triggerer holds 100,000 waits.
   */
  sleepUntil(epochMs: number, signal: AbortSignal): Promise<void>;
  /**
   * The connection `connId`, resolved where the trigger runs (`TSFLOW_CONN_<ID>`, else the database),
   * so a trigger row stores only the id, never the secret. Its password is masked in logs.
   */
  getConnection?(connId: string): Promise<Connection>;
  /**
   * Waits on other DAGs' runs without polling: `decide` is called with the runs `query` names each
   * time they may have changed (at once, on each task-instance or run-end NOTIFY, after a reconnect,
   * and on a slow safety poll); the promise resolves with its first defined answer, or undefined
   * when `signal` aborts. One shared watcher reads every trigger's runs in one statement.
   */
  watchStates?<T>(query: ExternalStateQuery, decide: (runs: ExternalRunState[]) => T | undefined, signal: AbortSignal): Promise<T | undefined>;
}

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

  abstract run(signal: AbortSignal, runtime?: TriggerRuntime): TriggerRun;

  /** Runs after `run` ends for any reason: release sockets, watchers, timers. */
  cleanup(): void | Promise<void> {}

  /** For time-based triggers: when the trigger is due (shown by `tsflow triggers list`, used for lateness). */
  dueAt(): DateTime | undefined {
    return undefined;
  }

  /** `dueAt()` as epoch milliseconds; time triggers override it to avoid building a DateTime per trigger. */
  dueAtMillis(): number | undefined {
    return this.dueAt()?.toMillis();
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
