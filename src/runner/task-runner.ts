import { DateTime, Duration } from 'luxon';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { TaskInstanceKey, TaskInstanceRow } from '../db/schema.ts';
import { writeDeferral } from '../db/deferral.ts';
import { finishTry, getXcom, heartbeatTry, setXcom, startTry, type StartedTry, type TryOutcome } from '../db/task-instances.ts';
import type { BaseOperator, TaskCallback } from '../sdk/base-operator.ts';
import type { TaskContext, TaskRuntimeDefaults } from '../sdk/context.ts';
import type { Dag } from '../sdk/dag.ts';
import { controlKind, type RescheduleTask } from '../sdk/errors.ts';
import { toJsonValue, type JsonObject, type JsonValue } from '../sdk/json.ts';
import type { TaskDeferred } from '../sdk/task-deferred.ts';
import { openTaskLog, type TaskLog } from './task-log.ts';

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

export class TaskExecutionTimeout extends Error {
  override name = 'TaskExecutionTimeout';
}

/** The task instance stopped being `running` this try while the task ran (cleared, failed as a zombie). */
export class TaskInstanceChangedError extends Error {
  override name = 'TaskInstanceChangedError';
}

/**
 * Runs one task instance once (`tsflow tasks run`): `execute`, or on resume the method it deferred
 * to. Each state change is one transaction; a defer writes the trigger and the `deferred` state
 * together. A resume does not count as a new try.
 */
export async function runTaskInstance(
  deps: TaskRunnerDeps,
  dag: Dag,
  key: TaskInstanceKey,
  options: { signal?: AbortSignal } = {},
): Promise<TaskRunResult> {
  const task = dag.getTask(key.taskId);
  const { row, resuming, run } = await startTry(deps.db, key, { hostname: deps.hostname, pid: deps.pid });
  const tryNumber = row.try_number;
  const daemonLog = deps.logger.child({ dagId: key.dagId, runId: key.runId, taskId: key.taskId, tryNumber });
  const taskLog = openLog(deps, key, tryNumber, daemonLog);
  // The task's own lines (context.log, errors with their stacks) go to the try's log file when there is one.
  const log = taskLog?.logger ?? daemonLog;
  const announce = (message: string, fields: object): void => {
    daemonLog.info(fields, message);
    if (taskLog) taskLog.logger.info(fields, message);
  };
  try {
    const startDate = DateTime.fromJSDate(row.start_date ?? new Date(), { zone: 'utc' });
    const timeout = executionDeadline(task, startDate);
    deps.onState?.({ key, state: 'running', tryNumber, ...(timeout ? { executionDeadline: timeout.toMillis() } : {}) });
    announce('task started', { resuming, method: row.next_method ?? 'execute', hostname: deps.hostname });
    const result = await runTry(deps, task, key, row, run, startDate, timeout, log, options.signal);
    if (result.state !== 'discarded') deps.onState?.({ key, state: result.state, tryNumber });
    announce('task finished', { state: result.state, error: result.error, interrupted: result.interrupted });
    return result;
  } finally {
    taskLog?.close();
  }
}

async function runTry(
  deps: TaskRunnerDeps,
  task: BaseOperator,
  key: TaskInstanceKey,
  row: TaskInstanceRow,
  run: StartedTry['run'],
  startDate: DateTime,
  timeout: DateTime | undefined,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<TaskRunResult> {
  const tryNumber = row.try_number;
  const abort = new AbortController();
  const forward = (): void => abort.abort(signal?.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener('abort', forward, { once: true });
  const timer = timeout
    ? setTimeout(() => abort.abort(new TaskExecutionTimeout(`task exceeded its executionTimeout of ${task.settings.executionTimeout?.toHuman()}`)), Math.max(0, timeout.diffNow().toMillis()))
    : undefined;
  const heartbeat = startHeartbeat(deps, key, tryNumber, abort, log);

  const context: TaskContext = {
    dagId: key.dagId,
    runId: key.runId,
    taskId: key.taskId,
    tryNumber,
    maxTries: row.max_tries,
    logicalDate: DateTime.fromJSDate(run.logicalDate, { zone: 'utc' }),
    startDate,
    conf: run.conf,
    log,
    signal: abort.signal,
    defaults: deps.defaults,
    xcomPull: async <T extends JsonValue = JsonValue>(taskId: string, xcomKey = 'return_value') =>
      (await getXcom(deps.db, { dagId: key.dagId, runId: key.runId, taskId }, xcomKey)) as T | undefined,
    xcomPush: async (xcomKey: string, value: unknown) =>
      setXcom(deps.db, key, xcomKey, JSON.stringify(toJsonValue(value, `XCom '${xcomKey}' of task '${key.taskId}'`))),
  };

  let result: TaskRunResult;
  let settled = false;
  try {
    // Told to stop before it began (a stop request during start-up): the task is not started at all.
    const work = abort.signal.aborted ? Promise.reject(abort.signal.reason as Error) : invoke(task, context, row);
    work.then(() => (settled = true), () => (settled = true));
    const value = await raceAbort(work, abort.signal);
    result = await succeed(deps, key, tryNumber, value, log);
    if (result.state === 'success') await runCallback(task.callbacks.onSuccess, context, undefined, log);
  } catch (error) {
    result = await handleError(deps, task, row, key, tryNumber, error, timeout, log);
    if (result.state === 'failed') await runCallback(task.callbacks.onFailure, context, error as Error, log);
    if (result.state === 'up_for_retry') await runCallback(task.callbacks.onRetry, context, error as Error, log);
  } finally {
    clearTimeout(timer);
    heartbeat.stop();
    signal?.removeEventListener('abort', forward);
  }
  if (abort.signal.aborted && !settled) {
    log.warn('the task did not stop when told to; its code may still be running in this process');
    return { ...result, interrupted: true };
  }
  return result;
}

function openLog(deps: TaskRunnerDeps, key: TaskInstanceKey, tryNumber: number, daemonLog: Logger): TaskLog | undefined {
  if (deps.logsFolder === undefined) return undefined;
  // At least `info`, whatever the daemon's level: the task log is where a task's story is read.
  const level = deps.logger.level === 'trace' ? 'trace' : deps.logger.level === 'debug' ? 'debug' : 'info';
  try {
    return openTaskLog(deps.logsFolder, key, tryNumber, level);
  } catch (error) {
    // A full disk or a read-only folder must not fail the task: its lines go to the daemon's log instead.
    daemonLog.error({ err: error, logsFolder: deps.logsFolder }, 'cannot open the task log file; logging to the process log');
    return undefined;
  }
}

/**
 * Writes `last_heartbeat_at` while the try runs, so a scheduler can tell a live task from one whose
 * worker died (a zombie). When the row is no longer `running` this try — cleared, or failed as a
 * zombie elsewhere — the task is told to stop, as Airflow's task runner does.
 */
function startHeartbeat(deps: TaskRunnerDeps, key: TaskInstanceKey, tryNumber: number, abort: AbortController, log: Logger): { stop(): void } {
  let beating = false;
  const timer = setInterval(() => {
    if (beating || abort.signal.aborted) return;
    beating = true;
    heartbeatTry(deps.db, key, tryNumber)
      .then((alive) => {
        if (!alive && !abort.signal.aborted) {
          abort.abort(new TaskInstanceChangedError('the task instance is no longer running this try (cleared, or failed elsewhere): stopping the task'));
        }
      })
      .catch((error: unknown) => log.warn({ err: error }, 'task heartbeat failed'))
      .finally(() => (beating = false));
  }, deps.heartbeatIntervalMs ?? 5000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

function invoke(task: BaseOperator, context: TaskContext, row: TaskInstanceRow): Promise<unknown> {
  return Promise.resolve().then(() =>
    row.next_method === null ? task.execute(context) : task.resumeExecution(context, row.next_method, (row.next_kwargs ?? {}) as JsonObject),
  );
}

/** Resolves with the task's result, or rejects with the abort reason as soon as the signal fires. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function succeed(deps: TaskRunnerDeps, key: TaskInstanceKey, tryNumber: number, value: unknown, log: Logger): Promise<TaskRunResult> {
  const returnValue = value === undefined ? undefined : JSON.stringify(toJsonValue(value, `the return value of task '${key.taskId}'`));
  const landed = await finishTry(deps.db, key, tryNumber, { state: 'success', returnValue });
  return landed ? { state: 'success', tryNumber } : discarded(tryNumber, log);
}

async function handleError(
  deps: TaskRunnerDeps,
  task: BaseOperator,
  row: TaskInstanceRow,
  key: TaskInstanceKey,
  tryNumber: number,
  error: unknown,
  deadline: DateTime | undefined,
  log: Logger,
): Promise<TaskRunResult> {
  const kind = controlKind(error);
  if (kind === 'defer') {
    return defer(deps, task, key, tryNumber, error as TaskDeferred, log);
  }
  const message = describeError(error);
  let outcome: TryOutcome;
  if (kind === 'skip') {
    outcome = { state: 'skipped', error: message };
  } else if (kind === 'reschedule') {
    outcome = { state: 'up_for_reschedule', readyAt: (error as RescheduleTask).rescheduleAt.toJSDate(), nextMethod: 'execute' };
  } else if (kind !== 'fail' && tryNumber <= row.max_tries) {
    const delay = retryDelay(task, tryNumber);
    outcome = { state: 'up_for_retry', error: message, readyAt: DateTime.utc().plus(delay).toJSDate() };
  } else {
    outcome = { state: 'failed', error: message };
  }
  if (outcome.state !== 'up_for_reschedule' && outcome.state !== 'skipped') log.error({ err: error }, 'task failed');
  const landed = await finishTry(deps.db, key, tryNumber, outcome);
  return landed ? { state: outcome.state, tryNumber, error: message } : discarded(tryNumber, log);
}

/** The defer write: one statement; the trigger timeout is reckoned by the database clock, capped by executionTimeout. */
async function defer(
  deps: TaskRunnerDeps,
  task: BaseOperator,
  key: TaskInstanceKey,
  tryNumber: number,
  error: TaskDeferred,
  log: Logger,
): Promise<TaskRunResult> {
  const [classpath, kwargs] = error.trigger.serialize();
  const written = await writeDeferral(deps.db, key, {
    fence: { running: tryNumber },
    trigger: { classpath, kwargs, priorityWeight: task.settings.priorityWeight },
    nextMethod: error.method,
    nextKwargs: error.kwargs,
    timeoutSeconds: error.timeout ? error.timeout.as('seconds') : null,
    executionTimeoutSeconds: task.settings.executionTimeout ? task.settings.executionTimeout.as('seconds') : null,
  });
  if (written === undefined) return discarded(tryNumber, log);
  log.info({ triggerId: written.triggerId, classpath, method: error.method, timeout: written.triggerTimeout?.toISOString() }, 'task deferred');
  return { state: 'deferred', tryNumber };
}

function discarded(tryNumber: number, log: Logger): TaskRunResult {
  log.warn('the task instance changed while it ran (cleared, timed out or failed elsewhere); its result is discarded');
  return { state: 'discarded', tryNumber };
}

function executionDeadline(task: BaseOperator, startDate: DateTime): DateTime | undefined {
  const limit = task.settings.executionTimeout;
  return limit ? startDate.plus(limit) : undefined;
}

/** Airflow's retry delay: fixed, or doubling per try (with jitter) up to maxRetryDelay. */
export function retryDelay(task: BaseOperator, tryNumber: number): Duration {
  const { retryDelay: base, retryExponentialBackoff, maxRetryDelay } = task.settings;
  if (!retryExponentialBackoff) return base;
  // Between base·2^(try−2) and base·2^(try−1), as Airflow spreads retries of many failing tasks.
  const ceiling = base.toMillis() * 2 ** Math.max(0, tryNumber - 1);
  return Duration.fromMillis(Math.min(maxRetryDelay.toMillis(), ceiling * (0.5 + Math.random() / 2)));
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

async function runCallback(callback: TaskCallback | undefined, context: TaskContext, error: Error | undefined, log: Logger): Promise<void> {
  if (!callback) return;
  try {
    await callback(context, error);
  } catch (callbackError) {
    log.error({ err: callbackError }, 'task callback failed');
  }
}
