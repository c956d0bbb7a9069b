import { DateTime } from 'luxon';
import { DateTimeTrigger } from '../../../triggers/date-time-trigger.ts';
import type { TaskContext } from '../context.ts';
import { toDuration, type DurationInput } from '../duration.ts';
import { BaseSensorOperator, type BaseSensorOptions, type SensorTriggerContext } from './base-sensor.ts';

export interface TimeDeltaSensorOptions extends BaseSensorOptions {
  /** Wait until this long after the run's logical date. */
  delta: DurationInput;
}

/** Waits until `logicalDate + delta` (Airflow's `TimeDeltaSensor`). */
export class TimeDeltaSensor extends BaseSensorOperator {
  readonly delta;

  constructor(options: TimeDeltaSensorOptions) {
    super(options);
    this.delta = toDuration(options.delta, `sensor '${options.taskId}' delta`);
  }

  target(context: SensorTriggerContext): DateTime {
    return context.logicalDate.plus(this.delta);
  }

  override poke(context: TaskContext): boolean {
    return DateTime.utc() >= this.target(context);
  }

  override trigger(context: SensorTriggerContext): DateTimeTrigger {
    return new DateTimeTrigger({ moment: this.target(context) });
  }
}

export interface DateTimeSensorOptions extends BaseSensorOptions {
  /** Wait until this moment (a luxon DateTime, a Date or an ISO 8601 string). */
  targetTime: DateTime | Date | string;
}

/** Waits until a fixed moment (Airflow's `DateTimeSensor`). */
export class DateTimeSensor extends BaseSensorOperator {
  readonly targetTime: DateTime;

  constructor(options: DateTimeSensorOptions) {
    super(options);
    this.targetTime = new DateTimeTrigger({ moment: options.targetTime }).moment;
  }

  override poke(): boolean {
    return DateTime.utc() >= this.targetTime;
  }

  override trigger(): DateTimeTrigger {
    return new DateTimeTrigger({ moment: this.targetTime });
  }
}
