import { DateTime, type Duration } from 'luxon';
import { sleep } from '../../common/sleep.ts';
import { BaseOperator, FAIL_METHOD, type BaseOperatorOptions } from '../base-operator.ts';
import type { TaskContext } from '../context.ts';
import { toDuration, type DurationInput } from '../duration.ts';
import { InvalidTriggerKwargsError, RescheduleTask, SensorTimeout, SkipTask, TaskDeferralTimeout } from '../errors.ts';
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
  /**
   * Go from `scheduled` straight to `deferred`: the scheduler hands the trigger to the triggerer and
   * no worker runs until it fires (Airflow's `start_from_trigger`). Implies `deferrable`. @default false
   */
  startFromTrigger?: boolean;
}

/**
 * What `trigger()` may rely on. With `startFromTrigger` the scheduler builds the trigger, with no
 * worker and so no XComs: only the run's identity, logical date, conf and the try.
 */
export type SensorTriggerContext = Pick<TaskContext, 'dagId' | 'runId' | 'taskId' | 'tryNumber' | 'logicalDate' | 'startDate' | 'conf' | 'log'>;

/** What the scheduler needs to start a try of a `startFromTrigger` sensor in the triggerer. */
export interface StartDeferral {
  trigger: BaseTrigger;
  /** Resume method once the trigger fires. */
  method: string;
  /** The trigger timeout, from the start of the try: the sensor's `timeout`, capped by `executionTimeout`. */
  timeout: Duration;
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
    this.startFromTrigger = options.startFromTrigger ?? false;
    if (this.startFromTrigger && options.deferrable === false) {
      throw new TypeError(`sensor '${options.taskId}': startFromTrigger needs deferrable: true (or leave deferrable unset)`);
    }
    // Starting in the triggerer is deferral by definition, whatever TSFLOW_DEFAULT_DEFERRABLE says.
    this.deferrable = options.deferrable ?? (this.startFromTrigger ? true : undefined);
  }

  abstract poke(context: TaskContext): PokeResult | Promise<PokeResult>;

  /** The trigger that waits for this sensor's condition; needed for `deferrable: true`. */
  trigger(_context: SensorTriggerContext): BaseTrigger {
    throw new TypeError(`sensor '${this.taskId}' (${this.constructor.name}) has no trigger, so it cannot be deferrable`);
  }

  /** Whether this sensor defers, given the engine's default. */
  isDeferrable(defaultDeferrable: boolean): boolean {
    return this.deferrable ?? defaultDeferrable;
  }

  /** With `startFromTrigger`: the deferral the scheduler makes for a new try; undefined otherwise. */
  startDeferral(context: SensorTriggerContext): StartDeferral | undefined {
    if (!this.startFromTrigger) return undefined;
    const limit = this.settings.executionTimeout;
    const timeout = limit && limit.toMillis() < this.timeout.toMillis() ? limit : this.timeout;
    return { trigger: this.trigger(context), method: 'executeComplete', timeout };
  }

  override async execute(context: TaskContext): Promise<JsonValue | undefined> {
    if (this.isDeferrable(context.defaults.deferrable)) {
      const first = await this.pokeOnce(context);
      if (first.done) return first.value;
      const remaining = this.remaining(context);
      if (remaining.toMillis() <= 0) return this.timedOut(`sensor '${this.taskId}' timed out after ${this.timeout.toHuman()}`);
      this.defer({ trigger: this.trigger(context), method: 'executeComplete', timeout: remaining });
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

/** Builds a sensor's trigger once at construction, so bad options fail when the DAG is defined, naming the sensor and the field. */
export function checkTriggerOptions(taskId: string, build: () => unknown): void {
  try {
    build();
  } catch (error) {
    if (error instanceof InvalidTriggerKwargsError) throw new InvalidTriggerKwargsError(`sensor '${taskId}': ${error.message}`, { cause: error });
    throw error;
  }
}

/** What the scheduler uses of a sensor whose new tries start in the triggerer. */
export type TriggerStartingSensor = Pick<BaseSensorOperator, 'taskId' | 'settings' | 'startDeferral'>;

/** True for a sensor (from any copy of the SDK) whose new tries start in the triggerer. */
export function startsFromTrigger(task: unknown): task is TriggerStartingSensor {
  if (typeof task !== 'object' || task === null) return false;
  const candidate = task as { startFromTrigger?: unknown; startDeferral?: unknown };
  return candidate.startFromTrigger === true && typeof candidate.startDeferral === 'function';
}
