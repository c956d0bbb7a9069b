import { DateTime, type Duration } from 'luxon';
import { sleep } from '../../common/sleep.ts';
import { BaseOperator, FAIL_METHOD, type BaseOperatorOptions } from '../base-operator.ts';
import type { TaskContext } from '../context.ts';
import { toDuration, type DurationInput } from '../duration.ts';
import { RescheduleTask, SensorTimeout, SkipTask, TaskDeferralTimeout } from '../errors.ts';
import type { JsonObject, JsonValue } from '../json.ts';
import type { BaseTrigger } from '../trigger.ts';

export type SensorMode = 'poke' | 'reschedule';

export interface BaseSensorOptions extends BaseOperatorOptions {
  /** Time between pokes. @default 60 seconds */
  pokeInterval?: DurationInput;
  /** Give up after this long, measured from the first poke of the try. @default 7 days */
  timeout?: DurationInput;
  /** On timeout, end as `skipped` instead of `failed`. @default false */
  softFail?: boolean;
  /** `poke` holds a worker slot between pokes; `reschedule` releases it. @default 'poke' */
  mode?: SensorMode;
  /** Hand the wait to the triggerer. @default the engine's `TSFLOW_DEFAULT_DEFERRABLE` (false) */
  deferrable?: boolean;
  /** With `deferrable`, go from `scheduled` straight to `deferred`, never taking a worker. @default false */
  startFromTrigger?: boolean;
}

/** What `poke` returns: done or not, optionally with a value that becomes the task's XCom. */
export type PokeResult = boolean | { done: boolean; value?: JsonValue };

/**
 * A task that waits for a condition. Subclasses implement `poke(context)` and, to be deferrable,
 * `trigger(context)`, which returns the trigger that waits for the same condition.
 */
export abstract class BaseSensorOperator extends BaseOperator<JsonValue | undefined> {
  readonly pokeInterval: Duration;
  readonly timeout: Duration;
  readonly softFail: boolean;
  readonly mode: SensorMode;
  readonly deferrable: boolean | undefined;
  readonly startFromTrigger: boolean;

  constructor(options: BaseSensorOptions) {
    super(options);
    this.pokeInterval = toDuration(options.pokeInterval ?? 60, `sensor '${options.taskId}' pokeInterval`);
    this.timeout = toDuration(options.timeout ?? { days: 7 }, `sensor '${options.taskId}' timeout`);
    this.softFail = options.softFail ?? false;
    this.mode = options.mode ?? 'poke';
    if (this.mode !== 'poke' && this.mode !== 'reschedule') {
      throw new TypeError(`sensor '${options.taskId}' mode must be 'poke' or 'reschedule', got '${String(this.mode)}'`);
    }
    this.deferrable = options.deferrable;
    this.startFromTrigger = options.startFromTrigger ?? false;
    if (this.startFromTrigger && this.deferrable === false) {
      throw new TypeError(`sensor '${options.taskId}': startFromTrigger needs deferrable: true`);
    }
  }

  abstract poke(context: TaskContext): PokeResult | Promise<PokeResult>;

  /** The trigger that waits for this sensor's condition; needed for `deferrable: true`. */
  trigger(_context: TaskContext): BaseTrigger {
    throw new TypeError(`sensor '${this.taskId}' (${this.constructor.name}) has no trigger, so it cannot be deferrable`);
  }

  /** Whether this sensor defers, given the engine's default. */
  isDeferrable(defaultDeferrable: boolean): boolean {
    return this.deferrable ?? defaultDeferrable;
  }

  override async execute(context: TaskContext): Promise<JsonValue | undefined> {
    if (this.isDeferrable(context.defaults.deferrable)) {
      const first = await this.pokeOnce(context);
      if (first.done) return first.value;
      this.defer({ trigger: this.trigger(context), method: 'executeComplete', timeout: this.remaining(context) });
    }
    for (;;) {
      const result = await this.pokeOnce(context);
      if (result.done) return result.value;
      const remaining = this.remaining(context);
      if (remaining.toMillis() <= 0) return this.timedOut(`sensor '${this.taskId}' timed out after ${this.timeout.toHuman()}`);
      const wait = Math.min(this.pokeInterval.toMillis(), remaining.toMillis());
      if (this.mode === 'reschedule') throw new RescheduleTask(DateTime.utc().plus(wait));
      await sleep(wait, context.signal);
      if (context.signal.aborted) throw context.signal.reason ?? new Error('sensor aborted');
    }
  }

  /** Resumed by the trigger: the event is the sensor's result (and XCom). */
  executeComplete(_context: TaskContext, event: JsonValue | undefined): JsonValue | undefined {
    return event;
  }

  override resumeExecution(context: TaskContext, method: string, nextKwargs: JsonObject): unknown {
    if (method === FAIL_METHOD && nextKwargs['timeout'] === true) {
      return this.timedOut(`sensor '${this.taskId}' timed out after ${this.timeout.toHuman()} (deferred)`);
    }
    try {
      return super.resumeExecution(context, method, nextKwargs);
    } catch (error) {
      if (error instanceof TaskDeferralTimeout) return this.timedOut(error.message);
      throw error;
    }
  }

  private async pokeOnce(context: TaskContext): Promise<{ done: boolean; value?: JsonValue }> {
    const result = await this.poke(context);
    return typeof result === 'boolean' ? { done: result } : result;
  }

  private remaining(context: TaskContext): Duration {
    return context.startDate.plus(this.timeout).diff(DateTime.utc());
  }

  private timedOut(message: string): never {
    if (this.softFail) throw new SkipTask(`${message}; skipped (softFail)`);
    throw new SensorTimeout(message);
  }
}
