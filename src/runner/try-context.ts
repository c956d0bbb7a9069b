import { findEvent } from '../db/events.ts';
import { getHitlDetail, takeHitlDefaults, upsertHitlRequest } from '../db/hitl.ts';
import { mapIndexOf } from '../db/schema.ts';
import { getMappedXcoms, getXcom, setXcom } from '../db/xcom.ts';
import { MappedOperator } from '../sdk/mapped-operator.ts';
import type { TaskContext, VariableOptions } from '../sdk/context.ts';
import { lookupConnection, lookupVariable } from '../secrets/lookup.ts';
import { toJsonValue, type JsonObject, type JsonValue } from '../sdk/json.ts';
import { dagRunAccess } from './dag-run-access.ts';
import { runContextFields } from './run-context.ts';
import type { TryRun } from './try-run.ts';

/**
 * What the task's code sees: Airflow's `context`, with XCom reads and writes on this run. `params`
 * are resolved by the caller, since a run whose conf makes them invalid fails before the task runs.
 */
export function buildContext(t: TryRun, signal: AbortSignal, params: JsonObject): TaskContext {
  const { deps, key } = t;
  return {
    dagId: key.dagId,
    runId: key.runId,
    taskId: key.taskId,
    mapIndex: mapIndexOf(key),
    tryNumber: t.tryNumber,
    maxTries: t.row.max_tries,
    ...runContextFields(t.run),
    params,
    startDate: t.startDate,
    log: t.log,
    signal,
    defaults: deps.defaults,
    dagRuns: dagRunAccess(deps.db),
    // A mapped task's XCom is the list of its map indexes' values, in map-index order.
    xcomPull: async <T extends JsonValue = JsonValue>(taskId: string, xcomKey = 'return_value') =>
      (t.task.dag.tasks.get(taskId) instanceof MappedOperator
        ? await getMappedXcoms(deps.db, key.dagId, key.runId, taskId, xcomKey)
        : await getXcom(deps.db, { dagId: key.dagId, runId: key.runId, taskId }, xcomKey)) as T | undefined,
    getConnection: (connId: string) => lookupConnection(deps.db, connId),
    getVariable: <T = string>(variableKey: string, options?: VariableOptions<T>) => lookupVariable<T>(deps.db, variableKey, options),
    findEvent: (eventKey, sinceEpochMs, match) => findEvent(deps.db, eventKey, sinceEpochMs, match),
    hitl: {
      request: async (request) => {
        const stored = await upsertHitlRequest(deps.db, key, t.tryNumber, request);
        return { eventKey: stored.eventKey, createdAtMs: stored.createdAt.getTime() };
      },
      answer: async () => (await getHitlDetail(deps.db, key))?.answer ?? undefined,
      takeDefaults: async () => {
        const answer = await takeHitlDefaults(deps.db, key);
        if (!answer) throw new Error(`task ${key.taskId}: its HITL request has neither an answer nor defaults`);
        return answer;
      },
    },
    xcomPush: async (xcomKey: string, value: unknown) =>
      setXcom(deps.db, key, xcomKey, JSON.stringify(toJsonValue(value, `XCom '${xcomKey}' of task '${key.taskId}'`))),
  };
}
