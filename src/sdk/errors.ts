import type { DateTime } from 'luxon';

/**
 * The runner recognises control-flow errors by this brand rather than `instanceof`, so a DAG file
 * that ended up with another copy of the SDK (CommonJS vs ESM, a second install) still works.
 */
const KIND = Symbol.for('tsflow.error-kind');
export type ControlKind = 'skip' | 'reschedule' | 'fail' | 'defer' | 'skip-downstream';

export function controlKind(error: unknown): ControlKind | undefined {
  return typeof error === 'object' && error !== null ? ((error as Record<symbol, ControlKind | undefined>)[KIND] ?? undefined) : undefined;
}

export function brand(proto: object, kind: ControlKind): void {
  Object.defineProperty(proto, KIND, { value: kind, enumerable: false });
}

/** Raise inside `execute` to end the task as `skipped` (Airflow's `AirflowSkipException`). */
export class SkipTask extends Error {
  override name = 'SkipTask';
}

/** Raise to release the worker and run again at `rescheduleAt` (Airflow's `AirflowRescheduleException`). */
export class RescheduleTask extends Error {
  override name = 'RescheduleTask';
  readonly rescheduleAt: DateTime;
  constructor(rescheduleAt: DateTime, message = `rescheduled to ${rescheduleAt.toISO()}`) {
    super(message);
    this.rescheduleAt = rescheduleAt;
  }
}

/** Raise to fail the task at once, without using the remaining retries. */
export class FailTask extends Error {
  override name = 'FailTask';
}

/**
 * Thrown by branching operators (Airflow 3's `DownstreamTasksSkipped`): the task succeeds with
 * `value` as its return value, and the listed task instances of the same run that have not started
 * are set `skipped` in the same statement as that success.
 */
export class SkipDownstreamTasks extends Error {
  override name = 'SkipDownstreamTasks';
  readonly taskIds: readonly string[];
  readonly value: unknown;
  constructor(taskIds: readonly string[], value?: unknown) {
    super(`skipping downstream tasks: ${taskIds.join(', ') || '(none)'}`);
    this.taskIds = taskIds;
    this.value = value;
  }
}

/** The task's trigger failed (threw, returned no event, could not be loaded). Raised on resume. */
export class TaskDeferralError extends Error {
  override name = 'TaskDeferralError';
}

/** The task's trigger did not fire before its timeout. Raised on resume. */
export class TaskDeferralTimeout extends TaskDeferralError {
  override name = 'TaskDeferralTimeout';
}

brand(SkipTask.prototype, 'skip');
brand(RescheduleTask.prototype, 'reschedule');
brand(FailTask.prototype, 'fail');
brand(SkipDownstreamTasks.prototype, 'skip-downstream');

/** A sensor ran past its `timeout` (Airflow's `AirflowSensorTimeout`); it fails without retrying. */
export class SensorTimeout extends FailTask {
  override name = 'SensorTimeout';
}

/** Trigger kwargs that the trigger's constructor refuses; names the field and what it must be. */
export class InvalidTriggerKwargsError extends TypeError {
  override name = 'InvalidTriggerKwargsError';
}
