import { DateTime } from 'luxon';
import { getXcom, setXcom } from '../db/xcom.ts';
import type { TaskContext } from '../sdk/context.ts';
import { toJsonValue, type JsonValue } from '../sdk/json.ts';
import type { TryRun } from './try-run.ts';

/** What the task's code sees: Airflow's `context`, with XCom reads and writes on this run. */
export function buildContext(t: TryRun, signal: AbortSignal): TaskContext {
  const { deps, key } = t;
  return {
    dagId: key.dagId,
    runId: key.runId,
    taskId: key.taskId,
    tryNumber: t.tryNumber,
    maxTries: t.row.max_tries,
    logicalDate: DateTime.fromJSDate(t.run.logicalDate, { zone: 'utc' }),
    startDate: t.startDate,
    conf: t.run.conf,
    log: t.log,
    signal,
    defaults: deps.defaults,
    xcomPull: async <T extends JsonValue = JsonValue>(taskId: string, xcomKey = 'return_value') =>
      (await getXcom(deps.db, { dagId: key.dagId, runId: key.runId, taskId }, xcomKey)) as T | undefined,
    xcomPush: async (xcomKey: string, value: unknown) =>
      setXcom(deps.db, key, xcomKey, JSON.stringify(toJsonValue(value, `XCom '${xcomKey}' of task '${key.taskId}'`))),
  };
}
