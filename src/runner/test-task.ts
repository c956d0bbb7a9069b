import { DateTime } from 'luxon';
import type { Logger } from 'pino';
import { sleep, sleepUntil } from '../common/sleep.ts';
import type { BaseOperator } from '../sdk/base-operator.ts';
import type { TaskContext, TaskRuntimeDefaults, VariableOptions } from '../sdk/context.ts';
import { toJsonObject, toJsonValue, type JsonObject, type JsonValue } from '../sdk/json.ts';
import { resolveParams } from '../sdk/params.ts';
import { EVENT_KEY, FAIL_METHOD } from '../sdk/resume-keys.ts';
import type { TaskDeferred } from '../sdk/task-deferred.ts';
import { lookupConnection, lookupVariable } from '../secrets/lookup.ts';
import { failurePayload, firstEvent } from '../triggerer/run-trigger.ts';
import type { TriggerRegistry } from '../triggerer/trigger-registry.ts';
import { noDagRunAccess } from './dag-run-access.ts';
import { runContextFields } from './run-context.ts';
import { TaskExecutionTimeout } from './runner-errors.ts';
import { describeError, invoke } from './task-outcome.ts';

/*
 * Airflow's `tasks test`: one task's code, in this process, with no state written anywhere. XCom
 * pushes go to a callback instead of a table, XCom pulls find nothing, and a deferral runs its
 * trigger right here — rebuilt from its serialized classpath and kwargs through the trigger
 * registry, exactly as a triggerer would rebuild it from its row — before the task resumes with the
 * event. The database is never opened.
 */

export interface TestTaskOptions {
  task: BaseOperator;
  logicalDate: DateTime;
  conf: JsonObject;
  registry: TriggerRegistry;
  /** The task's log (`context.log`) and where this function reports deferrals and resumes. */
  log: Logger;
  defaults: TaskRuntimeDefaults;
  /** Told each `xcomPush`, and the return value as `return_value`; nothing is stored. */
  onXcom: (key: string, value: JsonValue) => void;
}

export type TestTaskResult =
  | { state: 'success'; value: JsonValue | undefined }
  | { state: 'skipped'; message: string }
  | { state: 'failed'; error: string };

export async function testTask(options: TestTaskOptions): Promise<TestTaskResult> {
  const { task, log } = options;
  const dag = task.dag;
  const interval = dag.timetable.inferManualInterval(options.logicalDate);
  const startDate = DateTime.utc();
  const limit = task.settings.executionTimeout;
  const stop = new AbortController();
  const timer = limit
    ? setTimeout(() => stop.abort(new TaskExecutionTimeout(`task exceeded its executionTimeout of ${limit.toHuman()}`)), limit.toMillis())
    : undefined;
  try {
    let params: JsonObject;
    try {
      params = resolveParams(dag.params, options.conf);
    } catch (error) {
      return { state: 'failed', error: describeError(error) };
    }
    const runId = `test__${options.logicalDate.toISO()}`;
    const context: TaskContext = {
      dagId: dag.dagId,
      runId,
      taskId: task.taskId,
      mapIndex: -1,
      tryNumber: 1,
      maxTries: task.settings.retries,
      ...runContextFields({
        conf: options.conf,
        logicalDate: options.logicalDate.toJSDate(),
        runType: 'manual',
        dataIntervalStart: interval.start.toJSDate(),
        dataIntervalEnd: interval.end.toJSDate(),
        prevSuccess: undefined,
      }),
      params,
      startDate,
      log,
      signal: stop.signal,
      defaults: options.defaults,
      dagRuns: noDagRunAccess(),
      xcomPull: async () => undefined,
      // The database is never opened here: connections and variables come from TSFLOW_CONN_* / TSFLOW_VAR_*.
      getConnection: (connId: string) => lookupConnection(undefined, connId),
      getVariable: <T = string>(variableKey: string, opts?: VariableOptions<T>) => lookupVariable<T>(undefined, variableKey, opts),
      xcomPush: async (key: string, value: unknown) => options.onXcom(key, toJsonValue(value, `XCom '${key}' of task '${task.taskId}'`)),
    };
    let row: { next_method: string | null; next_kwargs: JsonObject | null } = { next_method: null, next_kwargs: null };
    for (;;) {
      const outcome = await invoke(task, context, row, stop.signal).outcome;
      switch (outcome.kind) {
        case 'value':
          if (outcome.value !== undefined) options.onXcom('return_value', outcome.value);
          return { state: 'success', value: outcome.value };
        case 'skipped':
          return { state: 'skipped', message: outcome.message };
        case 'failed':
          log.error({ err: outcome.error }, 'task failed');
          return { state: 'failed', error: describeError(outcome.error) };
        case 'rescheduled':
          log.info({ at: outcome.at.toISO() }, 'rescheduled: poking again then');
          await sleepUntil(outcome.at.toMillis(), stop.signal);
          row = { next_method: null, next_kwargs: null };
          break;
        case 'deferred':
          try {
            row = await runTriggerInline(outcome.deferral, options.registry, log, stop.signal, limit ? startDate.plus(limit) : undefined);
          } catch (error) {
            // Only the task's own stop (its executionTimeout) gets here.
            log.error({ err: error }, 'task failed while its trigger ran');
            return { state: 'failed', error: describeError(error) };
          }
          break;
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The deferral's trigger, rebuilt from what `serialize()` gives (a trigger that cannot be stored or
 * rebuilt fails here as it would in the triggerer), run until its first event or its timeout. Returns
 * what the task instance's `next_method`/`next_kwargs` would hold when it resumes.
 */
async function runTriggerInline(
  deferral: TaskDeferred,
  registry: TriggerRegistry,
  log: Logger,
  signal: AbortSignal,
  executionDeadline: DateTime | undefined,
): Promise<{ next_method: string; next_kwargs: JsonObject }> {
  const deadlines = [deferral.timeout ? DateTime.utc().plus(deferral.timeout) : undefined, executionDeadline].filter((d) => d !== undefined);
  const deadline = deadlines.length > 0 ? DateTime.min(...deadlines) : undefined;
  const controller = new AbortController();
  const forward = (): void => controller.abort(signal.reason);
  signal.addEventListener('abort', forward, { once: true });
  try {
    const [classpath, kwargs] = deferral.trigger.serialize();
    const stored = toJsonObject(JSON.parse(JSON.stringify(kwargs)) as JsonObject, `the kwargs of trigger '${classpath}'`);
    const TriggerClass = await registry.resolve(classpath);
    const trigger = new TriggerClass(stored);
    log.info({ trigger: classpath, method: deferral.method, timeout: deadline?.toISO() }, 'deferred: running the trigger in this process');
    const event = firstEvent(trigger, controller.signal);
    const timedOut = deadline ? sleep(Math.max(0, deadline.diffNow().toMillis()), controller.signal).then(() => 'timeout' as const) : new Promise<never>(() => undefined);
    const first = await Promise.race([event, timedOut, aborted(controller.signal)]);
    if (first === 'timeout') {
      log.warn('the trigger did not fire before its timeout');
      return { next_method: FAIL_METHOD, next_kwargs: { error: `Trigger timeout: the trigger did not fire before ${deadline?.toISO()}`, timeout: true } };
    }
    if (first === undefined) throw new Error(`trigger '${classpath}' ended without an event`);
    log.info('the trigger fired: resuming the task');
    return { next_method: deferral.method, next_kwargs: { ...deferral.kwargs, [EVENT_KEY]: toJsonValue(first.payload, `the event of trigger '${classpath}'`) } };
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    log.warn({ err: error }, 'the trigger failed');
    return { next_method: FAIL_METHOD, next_kwargs: failurePayload(error) };
  } finally {
    signal.removeEventListener('abort', forward);
    controller.abort();
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}
