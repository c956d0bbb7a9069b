import { DateTime, type Duration } from 'luxon';
import { WorkflowTrigger } from '../../../triggers/workflow-trigger.ts';
import type { TaskContext } from '../context.ts';
import { checkDisjoint, checkStates, DAG_RUN_STATES, judgeExternalStates, TASK_STATES, type ExternalStatus } from '../cross-dag.ts';
import { toDuration, type DurationInput } from '../duration.ts';
import { SkipTask } from '../errors.ts';
import type { JsonValue } from '../json.ts';
import { BaseSensorOperator, type BaseSensorOptions, type PokeResult, type SensorTriggerContext } from './base-sensor.ts';

export interface ExternalTaskSensorOptions extends BaseSensorOptions {
  /** The DAG whose run is waited for. */
  externalDagId: string;
  /** One task of it to wait for (or `externalTaskIds`; neither: the whole run). */
  externalTaskId?: string;
  externalTaskIds?: string[];
  /** States that count as done. @default ['success'] */
  allowedStates?: string[];
  /** States that fail the sensor at once. @default [] */
  failedStates?: string[];
  /** States that skip the sensor at once. @default [] */
  skippedStates?: string[];
  /** Wait for the run at this run's logical date minus this. @default 0 */
  executionDelta?: DurationInput;
  /** The logical date(s) to wait for, from this run's (instead of `executionDelta`). */
  executionDateFn?: (logicalDate: DateTime, context: TaskContext) => DateTime | DateTime[];
  /** On the first poke, fail unless the DAG (and the tasks) exist. @default false */
  checkExistence?: boolean;
}

/**
 * Waits for another DAG's task(s), or its whole run, at the same logical date (minus
 * `executionDelta`) to reach an allowed state (Airflow's `ExternalTaskSensor`). Any watched task
 * (or run) in a failed state fails it, in a skipped state skips it. Deferred, it hands the wait to a
 * `WorkflowTrigger`, which the NOTIFY of each task's end wakes in the triggerer.
 */
export class ExternalTaskSensor extends BaseSensorOperator {
  readonly externalDagId: string;
  readonly externalTaskIds: string[];
  readonly allowedStates: string[];
  readonly failedStates: string[];
  readonly skippedStates: string[];
  readonly executionDelta: Duration | undefined;
  readonly executionDateFn: ExternalTaskSensorOptions['executionDateFn'];
  readonly checkExistence: boolean;

  constructor(options: ExternalTaskSensorOptions) {
    super(options);
    const owner = `ExternalTaskSensor '${options.taskId}'`;
    if (typeof options.externalDagId !== 'string' || options.externalDagId === '') {
      throw new TypeError(`${owner}: externalDagId must name the DAG to wait for, got ${JSON.stringify(options.externalDagId)}`);
    }
    this.externalDagId = options.externalDagId;
    if (options.externalTaskId !== undefined && options.externalTaskIds !== undefined) {
      throw new TypeError(`${owner}: give externalTaskId or externalTaskIds, not both`);
    }
    const taskIds = options.externalTaskIds ?? (options.externalTaskId === undefined ? [] : [options.externalTaskId]);
    if (!Array.isArray(taskIds) || taskIds.some((t) => typeof t !== 'string' || t === '')) {
      throw new TypeError(`${owner}: externalTaskIds must be task ids, got ${JSON.stringify(taskIds)}`);
    }
    if (new Set(taskIds).size !== taskIds.length) throw new TypeError(`${owner}: externalTaskIds has duplicates: ${taskIds.join(', ')}`);
    this.externalTaskIds = [...taskIds];
    // Task ids: task instance states; none: the run's own states (Airflow's DagRunState).
    const vocabulary = taskIds.length > 0 ? TASK_STATES : DAG_RUN_STATES;
    this.allowedStates = checkStates(owner, 'allowedStates', options.allowedStates ?? ['success'], vocabulary);
    if (this.allowedStates.length === 0) throw new TypeError(`${owner}: allowedStates must name at least one state`);
    this.failedStates = checkStates(owner, 'failedStates', options.failedStates ?? [], vocabulary);
    this.skippedStates = checkStates(owner, 'skippedStates', options.skippedStates ?? [], vocabulary);
    checkDisjoint(owner, { allowedStates: this.allowedStates, failedStates: this.failedStates, skippedStates: this.skippedStates });
    if (options.executionDelta !== undefined && options.executionDateFn !== undefined) {
      throw new TypeError(`${owner}: give executionDelta or executionDateFn, not both`);
    }
    this.executionDelta = options.executionDelta === undefined ? undefined : toDuration(options.executionDelta, `${owner} executionDelta`);
    if (options.executionDateFn !== undefined && typeof options.executionDateFn !== 'function') {
      throw new TypeError(`${owner}: executionDateFn must be a function of the logical date`);
    }
    this.executionDateFn = options.executionDateFn;
    this.checkExistence = options.checkExistence ?? false;
    if (this.startFromTrigger && this.executionDateFn) {
      throw new TypeError(`${owner}: startFromTrigger cannot call executionDateFn (the scheduler starts the wait, with no task context): use executionDelta`);
    }
  }

  /** The logical dates waited for, ISO 8601 UTC. */
  logicalDates(context: Pick<TaskContext, 'logicalDate'> & Partial<TaskContext>): string[] {
    let dates: DateTime[];
    if (this.executionDateFn) {
      const result = this.executionDateFn(context.logicalDate, context as TaskContext);
      dates = Array.isArray(result) ? result : [result];
      const bad = dates.find((d) => !DateTime.isDateTime(d) || !d.isValid);
      if (bad !== undefined || dates.length === 0) {
        throw new TypeError(`ExternalTaskSensor '${this.taskId}': executionDateFn must return a luxon DateTime or a non-empty array of them, got ${String(bad)}`);
      }
    } else {
      dates = [this.executionDelta ? context.logicalDate.minus(this.executionDelta) : context.logicalDate];
    }
    return dates.map((d) => d.toUTC().toISO() as string);
  }

  override async poke(context: TaskContext): Promise<PokeResult> {
    // Checked at every poke (one query): an operator object outlives one try, so a flag would skip it for later runs.
    if (this.checkExistence) await this.#checkExistence(context);
    const logicalDates = this.logicalDates(context);
    const taskIds = this.externalTaskIds.length > 0 ? this.externalTaskIds : undefined;
    const runs = await context.dagRuns.states({ dagId: this.externalDagId, logicalDates, ...(taskIds && { taskIds }) });
    const status = judgeExternalStates(runs, { logicalDates, ...(taskIds && { taskIds }), ...this.#criteria() });
    context.log.info({ externalDagId: this.externalDagId, externalTaskIds: this.externalTaskIds, logicalDates, status: status ?? 'waiting' }, 'poked the external DAG');
    return status === undefined ? false : this.#conclude(status);
  }

  override trigger(context: SensorTriggerContext): WorkflowTrigger {
    return new WorkflowTrigger({
      externalDagId: this.externalDagId,
      logicalDates: this.logicalDates(context),
      externalTaskIds: this.externalTaskIds,
      ...this.#criteria(),
    });
  }

  override executeComplete(_context: TaskContext, event: JsonValue | undefined): JsonValue | undefined {
    const status = (event as { status?: string } | undefined)?.status;
    if (status !== 'success' && status !== 'failed' && status !== 'skipped') {
      throw new Error(`ExternalTaskSensor '${this.taskId}': the trigger fired without a status (event: ${JSON.stringify(event)})`);
    }
    this.#conclude(status);
    return undefined;
  }

  #criteria(): { allowedStates: string[]; failedStates: string[]; skippedStates: string[] } {
    return { allowedStates: this.allowedStates, failedStates: this.failedStates, skippedStates: this.skippedStates };
  }

  /** True for success; throws for failed (honouring softFail, as Airflow does) and skipped. */
  #conclude(status: ExternalStatus): true {
    const what = this.externalTaskIds.length > 0 ? `task(s) ${this.externalTaskIds.join(', ')} of DAG '${this.externalDagId}'` : `the run of DAG '${this.externalDagId}'`;
    if (status === 'skipped') throw new SkipTask(`${what} reached a skipped state (${this.skippedStates.join(', ')})`);
    if (status === 'failed') {
      const message = `${what} reached a failed state (${this.failedStates.join(', ')})`;
      if (this.softFail) throw new SkipTask(`${message}; skipped (softFail)`);
      throw new Error(message);
    }
    return true;
  }

  async #checkExistence(context: TaskContext): Promise<void> {
    const dag = await context.dagRuns.describeDag(this.externalDagId);
    if (!dag) throw new Error(`ExternalTaskSensor '${this.taskId}': the external DAG '${this.externalDagId}' does not exist (checkExistence)`);
    if (dag.taskIds) {
      const missing = this.externalTaskIds.filter((t) => !dag.taskIds?.includes(t));
      if (missing.length > 0) {
        throw new Error(`ExternalTaskSensor '${this.taskId}': DAG '${this.externalDagId}' has no task ${missing.map((t) => `'${t}'`).join(', ')} (checkExistence; its tasks: ${dag.taskIds.join(', ')})`);
      }
    }
  }
}
