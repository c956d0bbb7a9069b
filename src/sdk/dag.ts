import { AsyncLocalStorage } from 'node:async_hooks';
import { DateTime, IANAZone, type Duration } from 'luxon';
import { InvalidScheduleError } from '../scheduling/errors.ts';
import type { ScheduleInput } from '../scheduling/parse-schedule.ts';
import type { Timetable } from '../scheduling/timetable.ts';
import { validateScheduleOptions } from '../scheduling/validate-schedule-options.ts';
import type { BaseOperator, TaskDefaults } from './base-operator.ts';
import { toDuration, type DurationInput } from './duration.ts';
import { InvalidParamsError, serializeParams, type ParamsInput, type SerializedParams } from './params.ts';

/** A date option: a luxon `DateTime`, a JS `Date`, or an ISO 8601 string (`'2026-01-01T00:00:00Z'`). */
export type DateInput = DateTime | Date | string;

export interface DagOptions {
  /** Letters, digits, `_`, `-` and `.`; at most 250 characters. */
  dagId: string;
  description?: string;
  tags?: string[];
  /** Applied to every operator of the DAG unless the operator sets the option itself. */
  defaultArgs?: TaskDefaults;
  /**
   * When runs happen: a cron expression (`'0 6 * * *'`, 6 fields with seconds first), a preset
   * (`'@daily'`, `'@once'`, `'@continuous'`, …), a fixed interval (`{ hours: 1 }`, `'PT1H'`, 3600),
   * a `Timetable`, or `null` — manual runs only. @default null
   */
  schedule?: ScheduleInput;
  /** The first data interval starts here; required with a schedule. */
  startDate?: DateInput;
  /** No run whose logical date is after this is created. */
  endDate?: DateInput;
  /** IANA zone cron is evaluated in. @default startDate's zone if it has one, else 'UTC' */
  timezone?: string;
  /** Create every interval missed since `startDate` (true) or only the latest (false). @default false */
  catchup?: boolean;
  /** Runs of this DAG running at once; more wait `queued`. @default 16 */
  maxActiveRuns?: number;
  /** Task instances of this DAG queued or running at once, over all its runs. @default 16 */
  maxActiveTasks?: number;
  /** A run still going after this long fails; its unfinished tasks are stopped (deferred ones' triggers cancelled). */
  dagrunTimeout?: DurationInput;
  /** A DAG seen for the first time starts paused. @default false */
  isPausedUponCreation?: boolean;
  /** Run parameters: defaults (plain JSON) or `param(default, jsonSchema)`; `--conf` overrides, validated. */
  params?: ParamsInput;
}

export const DEFAULT_MAX_ACTIVE_RUNS = 16;
export const DEFAULT_MAX_ACTIVE_TASKS = 16;

const DAG_BRAND = Symbol.for('tsflow.dag');
const ID_PATTERN = /^[A-Za-z0-9_.-]{1,250}$/;

/** The DAG whose callback is running: operators constructed inside it join that DAG. */
const dagContext = new AsyncLocalStorage<Dag>();

export function assertValidId(kind: string, id: unknown): asserts id is string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new TypeError(
      `${kind} ${JSON.stringify(id)} is not valid: use 1-250 letters, digits, '_', '-' or '.'`,
    );
  }
}

export class Dag {
  readonly [DAG_BRAND] = true;
  readonly dagId: string;
  readonly description: string | undefined;
  readonly tags: readonly string[];
  readonly defaultArgs: TaskDefaults;
  readonly timetable: Timetable;
  readonly timezone: string;
  readonly startDate: DateTime | undefined;
  readonly endDate: DateTime | undefined;
  readonly catchup: boolean;
  readonly maxActiveRuns: number;
  readonly maxActiveTasks: number;
  readonly dagrunTimeout: Duration | undefined;
  readonly isPausedUponCreation: boolean;
  readonly params: SerializedParams;
  readonly #tasks = new Map<string, BaseOperator>();
  /** Set by the DAG loader: the file that defined this DAG. */
  fileloc: string | undefined;

  constructor(options: DagOptions) {
    assertValidId('dagId', options.dagId);
    this.dagId = options.dagId;
    this.description = options.description;
    this.tags = [...(options.tags ?? [])];
    this.defaultArgs = { ...(options.defaultArgs ?? {}) };
    const { dagId } = options;
    // A date string without an offset is read in the DAG's timezone (UTC if none), never the machine's.
    // (An unknown zone is reported by the schedule check below, naming the timezone field.)
    const zone = typeof options.timezone === 'string' && IANAZone.isValidZone(options.timezone) ? options.timezone : 'utc';
    const startDate = toDate(dagId, 'startDate', options.startDate, zone);
    const endDate = toDate(dagId, 'endDate', options.endDate, zone);
    const maxActiveRuns = positiveInt(dagId, 'maxActiveRuns', options.maxActiveRuns, DEFAULT_MAX_ACTIVE_RUNS);
    const compiled = validateScheduleOptions({
      dagId,
      schedule: options.schedule,
      ...(startDate && { startDate }),
      ...(endDate && { endDate }),
      ...(options.timezone !== undefined && { timezone: options.timezone }),
      ...(options.catchup !== undefined && { catchup: options.catchup }),
      ...(options.maxActiveRuns !== undefined && { maxActiveRuns }),
    });
    this.timetable = compiled.timetable;
    this.timezone = compiled.timezone;
    this.startDate = compiled.startDate;
    this.endDate = compiled.endDate;
    this.catchup = compiled.catchup;
    // `@continuous` allows one active run; a DAG that does not set maxActiveRuns gets that limit.
    this.maxActiveRuns = options.maxActiveRuns === undefined ? Math.min(maxActiveRuns, compiled.timetable.maxActiveRunsLimit ?? Infinity) : maxActiveRuns;
    this.maxActiveTasks = positiveInt(dagId, 'maxActiveTasks', options.maxActiveTasks, DEFAULT_MAX_ACTIVE_TASKS);
    if (options.dagrunTimeout !== undefined) {
      try {
        this.dagrunTimeout = toDuration(options.dagrunTimeout, 'dagrunTimeout');
      } catch (error) {
        throw new InvalidScheduleError(dagId, 'dagrunTimeout', `${(error as Error).message}`, { cause: error });
      }
      if (this.dagrunTimeout.toMillis() <= 0) throw new InvalidScheduleError(dagId, 'dagrunTimeout', 'dagrunTimeout must be positive, e.g. { hours: 2 }');
    }
    if (options.isPausedUponCreation !== undefined && typeof options.isPausedUponCreation !== 'boolean') {
      throw new InvalidScheduleError(dagId, 'isPausedUponCreation', `isPausedUponCreation must be true or false, got ${JSON.stringify(options.isPausedUponCreation)}`);
    }
    this.isPausedUponCreation = options.isPausedUponCreation ?? false;
    try {
      this.params = serializeParams(dagId, options.params);
    } catch (error) {
      const field = error instanceof InvalidParamsError ? error.field : 'params';
      throw new InvalidScheduleError(dagId, field, (error as Error).message.replace(`DAG '${dagId}' `, ''), { cause: error });
    }
  }

  get tasks(): ReadonlyMap<string, BaseOperator> {
    return this.#tasks;
  }

  getTask(taskId: string): BaseOperator {
    const task = this.#tasks.get(taskId);
    if (!task) {
      const known = [...this.#tasks.keys()].join(', ') || 'none';
      throw new TaskNotFoundError(`DAG '${this.dagId}' has no task '${taskId}' (its tasks: ${known})`);
    }
    return task;
  }

  /** Called by `BaseOperator`'s constructor; a second task with the same id is an error. */
  addTask(task: BaseOperator): void {
    if (this.#tasks.has(task.taskId)) {
      throw new TypeError(`DAG '${this.dagId}' already has a task '${task.taskId}'; task ids must be unique`);
    }
    this.#tasks.set(task.taskId, task);
  }

  /** Throws when the dependencies form a cycle, naming the tasks on it. */
  validate(): void {
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (taskId: string): void => {
      const mark = state.get(taskId);
      if (mark === 'done') return;
      if (mark === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(taskId)), taskId].join(' >> ');
        throw new TypeError(`DAG '${this.dagId}' has a cycle: ${cycle}`);
      }
      state.set(taskId, 'visiting');
      stack.push(taskId);
      for (const next of this.getTask(taskId).downstreamTaskIds) visit(next);
      stack.pop();
      state.set(taskId, 'done');
    };
    for (const taskId of this.#tasks.keys()) visit(taskId);
  }
}

function toDate(dagId: string, field: string, value: DateInput | undefined, zone: string): DateTime | undefined {
  if (value === undefined) return undefined;
  let date: DateTime;
  if (DateTime.isDateTime(value)) date = value;
  else if (value instanceof Date) date = DateTime.fromJSDate(value, { zone: 'utc' });
  else if (typeof value === 'string') date = DateTime.fromISO(value, { zone, setZone: true });
  else throw new InvalidScheduleError(dagId, field, `${field} must be a DateTime, a Date or an ISO 8601 string, got ${JSON.stringify(value)}`);
  if (!date.isValid) {
    throw new InvalidScheduleError(dagId, field, `${field} ${JSON.stringify(String(value))} is not a valid date; write an ISO 8601 date such as '2026-01-01T00:00:00Z'`);
  }
  return date;
}

function positiveInt(dagId: string, field: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidScheduleError(dagId, field, `${field} must be a whole number of at least 1, got ${JSON.stringify(value)}`);
  }
  return value;
}

export class TaskNotFoundError extends Error {
  override name = 'TaskNotFoundError';
}

/**
 * Defines a DAG: operators constructed while `define` runs belong to it (Airflow's `with DAG(...)`).
 * A DAG file exports the result: `export default dag({ dagId: 'etl' }, () => { ... })`.
 */
export function dag(options: DagOptions, define: () => void): Dag {
  const created = new Dag(options);
  const result: unknown = dagContext.run(created, define);
  if (result instanceof Promise) {
    throw new TypeError(`the callback of dag '${created.dagId}' must be synchronous: construct operators directly in it`);
  }
  created.validate();
  return created;
}

/** The DAG being defined, if an operator is constructed inside a `dag()` callback. */
export function currentDag(): Dag | undefined {
  return dagContext.getStore();
}

/** True for DAG objects, even when created by another copy of tsflow. */
export function isDag(value: unknown): value is Dag {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DAG_BRAND] === true;
}
