import type { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { TaskInstanceKey, TaskInstanceRow } from '../db/schema.ts';
import type { StartedTry } from '../db/task-instances.ts';
import type { BaseOperator } from '../sdk/base-operator.ts';
import type { TaskRuntimeDefaults } from '../sdk/context.ts';

export interface TaskRunnerDeps {
  db: Db;
  logger: Logger;
  hostname: string;
  pid: number;
  defaults: TaskRuntimeDefaults;
  /** Told each state this runner commits, after the commit. */
  onState?: (change: TaskStateChange) => void;
  /** Where each try's log file goes (`<logsFolder>/<dag>/<run>/<task>/attempt=<try>.log`); none when unset. */
  logsFolder?: string;
  /** How often the running try's `last_heartbeat_at` is written, for zombie detection. @default 5000 */
  heartbeatIntervalMs?: number;
}

export type TaskRunState = 'running' | 'success' | 'failed' | 'up_for_retry' | 'skipped' | 'up_for_reschedule' | 'deferred';

export interface TaskStateChange {
  key: TaskInstanceKey;
  state: TaskRunState;
  tryNumber: number;
  /** With `running`: when the task's executionTimeout passes (epoch ms), so a supervisor can enforce it too. */
  executionDeadline?: number;
}

export interface TaskRunResult {
  /** The state written; `discarded` when the task instance changed under us (cleared, timed out). */
  state: Exclude<TaskRunState, 'running'> | 'discarded';
  tryNumber: number;
  error?: string;
  /**
   * The task was told to stop (executionTimeout, a stop request, its task instance changed under it)
   * and its code had not returned when the try was recorded: it may still be running in this
   * process, so a worker that ran it should not be reused.
   */
  interrupted?: boolean;
}

/** One try of one task instance, as the runner carries it from its start to its recorded outcome. */
export interface TryRun {
  readonly deps: TaskRunnerDeps;
  readonly task: BaseOperator;
  readonly key: TaskInstanceKey;
  /** The task instance as `startTry` left it: `running` this try. */
  readonly row: TaskInstanceRow;
  /** The run's conf and logical date. */
  readonly run: StartedTry['run'];
  readonly tryNumber: number;
  /** When the try first started (kept across deferrals and reschedules). */
  readonly startDate: DateTime;
  /** When the task's executionTimeout passes, if it has one. */
  readonly deadline: DateTime | undefined;
  /** The task's log: the try's log file when there is one, else the process log. */
  readonly log: Logger;
  /** The process log, for what whoever runs the worker must see too. */
  readonly processLog: Logger;
  /** The worker's stop request (a lost executor, a SIGTERM). */
  readonly signal: AbortSignal | undefined;
}
