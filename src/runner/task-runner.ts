import { DateTime, Duration } from 'luxon';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import type { TaskInstanceKey, TaskInstanceRow } from '../db/schema.ts';
import { deferTry, finishTry, getXcom, setXcom, startTry, type TryOutcome } from '../db/task-instances.ts';
import type { BaseOperator, TaskCallback } from '../sdk/base-operator.ts';
import type { TaskContext, TaskRuntimeDefaults } from '../sdk/context.ts';
import type { Dag } from '../sdk/dag.ts';
import { controlKind, type RescheduleTask } from '../sdk/errors.ts';
import { toJsonValue, type JsonObject, type JsonValue } from '../sdk/json.ts';
import type { TaskDeferred } from '../sdk/task-deferred.ts';

export interface TaskRunnerDeps {
  db: Db;
  logger: Logger;
  hostname: string;
  pid: number;
  defaults: TaskRuntimeDefaults;
  /** Told each state this runner commits, after the commit. */
  onState?: (change: TaskStateChange) => void;
}

export type TaskRunState = 'running' | 'success' | 'failed' | 'up_for_retry' | 'skipped' | 'up_for_reschedule' | 'deferred';

export interface TaskStateChange {
  key: TaskInstanceKey;
  state: TaskRunState;
  tryNumber: number;
}

export interface TaskRunResult {
  /** The state written; `discarded` when the task instance changed under us (cleared, timed out). */
  state: Exclude<TaskRunState, 'running'> | 'discarded';
  tryNumber: number;
  error?: string;
}

export class TaskExecutionTimeout extends Error {
  override name = 'TaskExecutionTimeout';
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
  const { row, resuming } = await startTry(deps.db, key, { hostname: deps.hostname, pid: deps.pid });
  const tryNumber = row.try_number;
  const log = deps.logger.child({ dagId: key.dagId, runId: key.runId, taskId: key.taskId, tryNumber });
  deps.onState?.({ key, state: 'running', tryNumber });
  log.info({ resuming, method: row.next_method ?? 'execute' }, 'task started');

  const run = await deps.db.selectFrom('dag_run').select(['conf', 'logical_date']).where('dag_id', '=', key.dagId).where('run_id', '=', key.runId).executeTakeFirstOrThrow();
  const startDate = DateTime.fromJSDate(row.start_date ?? new Date(), { zone: 'utc' });
  const timeout = executionDeadline(task, startDate);
  const abort = new AbortController();
  options.signal?.addEventListener('abort', () => abort.abort(options.signal?.reason), { once: true });
  const timer = timeout ? setTimeout(() => abort.abort(new TaskExecutionTimeout(`task exceeded its executionTimeout of ${task.settings.executionTimeout?.toHuman()}`)), Math.max(0, timeout.diffNow().toMillis())) : undefined;

  const context: TaskContext = {
    dagId: key.dagId,
    runId: key.runId,
    taskId: key.taskId,
    tryNumber,
    maxTries: row.max_tries,
    logicalDate: DateTime.fromJSDate(run.logical_date, { zone: 'utc' }),
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
  try {
    const value = await raceAbort(invoke(task, context, row), abort.signal);
    result = await succeed(deps, key, tryNumber, value, log);
    if (result.state === 'success') await runCallback(task.callbacks.onSuccess, context, undefined, log);
  } catch (error) {
    result = await handleError(deps, task, row, key, tryNumber, error, timeout, log);
    if (result.state === 'failed') await runCallback(task.callbacks.onFailure, context, error as Error, log);
    if (result.state === 'up_for_retry') await runCallback(task.callbacks.onRetry, context, error as Error, log);
  } finally {
    clearTimeout(timer);
  }
  if (result.state !== 'discarded') deps.onState?.({ key, state: result.state, tryNumber });
  log.info({ state: result.state, error: result.error }, 'task finished');
  return result;
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
    return defer(deps, task, key, tryNumber, error as TaskDeferred, deadline, log);
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

async function defer(
  deps: TaskRunnerDeps,
  task: BaseOperator,
  key: TaskInstanceKey,
  tryNumber: number,
  error: TaskDeferred,
  deadline: DateTime | undefined,
  log: Logger,
): Promise<TaskRunResult> {
  const [classpath, kwargs] = error.trigger.serialize();
  let timeout: DateTime | undefined = error.timeout ? DateTime.utc().plus(error.timeout) : undefined;
  if (deadline && (!timeout || deadline < timeout)) timeout = deadline; // capped by executionTimeout
  const triggerId = await deferTry(deps.db, key, tryNumber, {
    trigger: { classpath, kwargs, priorityWeight: task.settings.priorityWeight },
    nextMethod: error.method,
    nextKwargs: error.kwargs,
    timeout: timeout?.toJSDate() ?? null,
  });
  if (triggerId === undefined) return discarded(tryNumber, log);
  log.info({ triggerId, classpath, method: error.method, timeout: timeout?.toISO() }, 'task deferred');
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
