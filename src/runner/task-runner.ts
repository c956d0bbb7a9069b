import { DateTime } from 'luxon';
import type { TryClaim } from '../db/task-instances.ts';
import type { Logger } from 'pino';
import type { TaskInstanceKey } from '../db/schema.ts';
import type { StartedTry } from '../db/task-instances.ts';
import type { BaseOperator, TaskCallback } from '../sdk/base-operator.ts';
import type { TaskContext } from '../sdk/context.ts';
import type { Dag } from '../sdk/dag.ts';
import type { JsonObject } from '../sdk/json.ts';
import { resolveParams } from '../sdk/params.ts';
import { recordOutcome } from './record-outcome.ts';
import { startTryRetrying } from './start-try.ts';
import { openTaskLog, type TaskLog } from './task-log.ts';
import { invoke, type Invocation, type TaskOutcome } from './task-outcome.ts';
import { taskStop } from './task-stop.ts';
import { buildContext } from './try-context.ts';
import { startHeartbeat } from './try-heartbeat.ts';
import type { TaskRunnerDeps, TaskRunResult, TryRun } from './try-run.ts';

export { retryDelay } from './retry-delay.ts';
export { OutcomeNotRecordedError, TaskExecutionTimeout, TaskInstanceChangedError } from './runner-errors.ts';
export type { TaskRunnerDeps, TaskRunResult, TaskRunState, TaskStateChange, TryRun } from './try-run.ts';

/**
 * Runs one task instance once (`tsflow tasks run`): `execute`, or on resume the method it deferred
 * to. Each state change is one statement; a defer writes the trigger and the `deferred` state
 * together. A resume does not count as a new try. Rejects (OutcomeNotRecordedError) only when the
 * outcome could not be written before the worker was told to stop.
 */
export async function runTaskInstance(
  deps: TaskRunnerDeps,
  dag: Dag,
  key: TaskInstanceKey,
  options: { signal?: AbortSignal; claim?: TryClaim | undefined } = {},
): Promise<TaskRunResult> {
  const task = dag.getTask(key.taskId);
  const taskLogger = deps.logger.child({ dagId: key.dagId, runId: key.runId, taskId: key.taskId });
  const started = await startTryRetrying(deps, key, options.signal, taskLogger, options.claim);
  const processLog = taskLogger.child({ tryNumber: started.row.try_number });
  const taskLog = openLog(deps, key, started.row.try_number, processLog);
  const t = describeTry(deps, task, key, started, { log: taskLog?.logger ?? processLog, processLog, signal: options.signal });
  const announce = (message: string, fields: object): void => {
    processLog.info(fields, message);
    if (taskLog) taskLog.logger.info(fields, message);
  };
  try {
    deps.onState?.({ key, state: 'running', tryNumber: t.tryNumber, ...(t.deadline ? { executionDeadline: t.deadline.toMillis() } : {}) });
    announce('task started', { resuming: started.resuming, method: t.row.next_method ?? 'execute', hostname: deps.hostname });
    const result = await runTry(t);
    if (result.state !== 'discarded') deps.onState?.({ key, state: result.state, tryNumber: t.tryNumber });
    announce('task finished', { state: result.state, error: result.error, interrupted: result.interrupted });
    return result;
  } finally {
    taskLog?.close();
  }
}

/**
 * One try, top to bottom: build the context, invoke the task, record what it came to, then the
 * task's callbacks. The heartbeat runs until the outcome is recorded (through any retries of that
 * write); the task is told to stop by the worker, its executionTimeout, or the heartbeat finding the
 * try taken away.
 */
async function runTry(t: TryRun): Promise<TaskRunResult> {
  const stop = taskStop(t);
  const heartbeat = startHeartbeat(t, (lost) => stop.abort(lost));
  try {
    const params = runParams(t);
    const context = buildContext(t, stop.signal, params.ok ? params.value : {});
    const invocation = params.ok ? invoke(t.task, context, t.row, stop.signal) : refused(params.error);
    const outcome = await invocation.outcome;
    const result = await recordOutcome(t, outcome);
    heartbeat.stop();
    await runCallbacks(t, context, outcome, result);
    if (stop.signal.aborted && !invocation.settled) {
      t.log.warn('the task did not stop when told to; its code may still be running in this process');
      return { ...result, interrupted: true };
    }
    return result;
  } finally {
    heartbeat.stop();
    stop.dispose();
  }
}

/**
 * The DAG's params with the run's conf over them. Invalid ones fail the try before the task's code
 * runs (a retry would meet the same conf), with the error naming the field.
 */
function runParams(t: TryRun): { ok: true; value: JsonObject } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: resolveParams(t.task.dag.params, t.run.conf) };
  } catch (error) {
    return { ok: false, error };
  }
}

function refused(error: unknown): Invocation {
  return { outcome: Promise.resolve({ kind: 'failed', error, retryable: false }), settled: true };
}

function describeTry(
  deps: TaskRunnerDeps,
  task: BaseOperator,
  key: TaskInstanceKey,
  { row, run }: StartedTry,
  rest: Pick<TryRun, 'log' | 'processLog' | 'signal'>,
): TryRun {
  const startDate = DateTime.fromJSDate(row.start_date ?? new Date(), { zone: 'utc' });
  const limit = task.settings.executionTimeout;
  return { deps, task, key, row, run, tryNumber: row.try_number, startDate, deadline: limit ? startDate.plus(limit) : undefined, ...rest };
}

function openLog(deps: TaskRunnerDeps, key: TaskInstanceKey, tryNumber: number, processLog: Logger): TaskLog | undefined {
  if (deps.logsFolder === undefined) return undefined;
  // At least `info`, whatever the daemon's level: the task log is where a task's story is read.
  const level = deps.logger.level === 'trace' ? 'trace' : deps.logger.level === 'debug' ? 'debug' : 'info';
  try {
    return openTaskLog(deps.logsFolder, key, tryNumber, level);
  } catch (error) {
    // A full disk or a read-only folder must not fail the task: its lines go to the daemon's log instead.
    processLog.error({ err: error, logsFolder: deps.logsFolder }, 'cannot open the task log file; logging to the process log');
    return undefined;
  }
}

/** Airflow's callbacks, after the state they report is committed; one that throws is logged, never fails the try. */
async function runCallbacks(t: TryRun, context: TaskContext, outcome: TaskOutcome, result: TaskRunResult): Promise<void> {
  const { callbacks } = t.task;
  const error = outcome.kind === 'failed' ? asError(outcome.error) : undefined;
  if (result.state === 'success') await runCallback(callbacks.onSuccess, context, undefined, t.log);
  if (result.state === 'failed') await runCallback(callbacks.onFailure, context, error, t.log);
  if (result.state === 'up_for_retry') await runCallback(callbacks.onRetry, context, error, t.log);
}

async function runCallback(callback: TaskCallback | undefined, context: TaskContext, error: Error | undefined, log: Logger): Promise<void> {
  if (!callback) return;
  try {
    await callback(context, error);
  } catch (callbackError) {
    log.error({ err: callbackError }, 'task callback failed');
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
