import { runIdFor } from '../db/next-dagrun.ts';
import { noDagRunAccess } from './dag-run-access.ts';
import { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { Db } from '../db/database.ts';
import { findRunByLogicalDate } from '../db/run-info.ts';
import type { BaseOperator } from '../sdk/base-operator.ts';
import type { TaskContext, VariableOptions } from '../sdk/context.ts';
import type { JsonObject } from '../sdk/json.ts';
import { resolveParams } from '../sdk/params.ts';
import { lookupConnection, lookupVariable } from '../secrets/lookup.ts';
import { renderTemplateFields, templateFieldsOf } from './render-templates.ts';
import { runContextFields } from './run-context.ts';

/*
 * Airflow's `tasks render`: a task's templated fields as they would be rendered for a logical date,
 * without running it. The run with that logical date supplies the run id and conf when there is one;
 * otherwise the context is that of a manual run at that date with an empty conf.
 */

/** The context a task's templates are rendered with by `tasks render`, and which run it came from. */
export interface RenderContext {
  readonly context: TaskContext;
  /** The run whose context is used, or undefined when none has that logical date. */
  readonly runId: string | undefined;
}

export async function renderContextFor(options: { task: BaseOperator; db: Db; logicalDate: DateTime; log: Logger }): Promise<RenderContext> {
  const { task, db, log } = options;
  const dag = task.dag;
  const found = await findRunByLogicalDate(db, dag.dagId, options.logicalDate.toJSDate());
  const interval = dag.timetable.inferManualInterval(options.logicalDate);
  const info = found?.info ?? {
    conf: {} as JsonObject,
    logicalDate: options.logicalDate.toJSDate(),
    runType: 'manual' as const,
    dataIntervalStart: interval.start.toJSDate(),
    dataIntervalEnd: interval.end.toJSDate(),
    prevSuccess: undefined,
  };
  const context: TaskContext = {
    dagId: dag.dagId,
    runId: found?.runId ?? runIdFor('manual', options.logicalDate),
    taskId: task.taskId,
    mapIndex: -1,
    tryNumber: 1,
    maxTries: task.settings.retries,
    ...runContextFields(info),
    params: resolveParams(dag.params, info.conf),
    startDate: DateTime.utc(),
    log,
    signal: new AbortController().signal,
    defaults: { deferrable: false },
    xcomPull: async () => undefined,
    xcomPush: async () => undefined,
    getConnection: (connId: string) => lookupConnection(db, connId),
    getVariable: <T = string>(key: string, opts?: VariableOptions<T>) => lookupVariable<T>(db, key, opts),
    // Rendering reads; it never triggers or inspects other DAGs' runs.
    dagRuns: noDagRunAccess(),
  };
  return { context, runId: found?.runId };
}

/** Each templated field with its rendered value (or its value as is when it is not rendered: unset, a function). */
export async function renderFields(task: BaseOperator, context: TaskContext): Promise<{ field: string; value: unknown }[]> {
  const rendered = await renderTemplateFields(task, context);
  const record = task as unknown as Record<string, unknown>;
  return templateFieldsOf(task).map((field) => ({ field, value: rendered.has(field) ? rendered.get(field) : record[field] }));
}
