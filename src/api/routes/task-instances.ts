import { Type } from 'typebox';
import { DagSpec } from '../../dag-bag/serialized-dag.ts';
import { clearTaskInstances } from '../../db/clear.ts';
import { getDagRun } from '../../db/dag-runs.ts';
import { getDagDetail } from '../../db/dag-list.ts';
import type { TaskInstanceRow } from '../../db/schema.ts';
import { getTaskInstance } from '../../db/task-instances.ts';
import { listTaskInstancesPage, markTaskInstance, TI_ORDER_COLUMNS } from '../../db/ti-list.ts';
import { badRequest, notFound, ApiError } from '../problem.ts';
import { isoOrNull, NullableDateTime, orderByQuery, PageQuery, parseOrder, responses, DateTimeString, iso } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const TI_STATES = ['scheduled', 'queued', 'running', 'success', 'failed', 'skipped', 'upstream_failed', 'up_for_retry', 'up_for_reschedule', 'deferred', 'removed'] as const;
const TiState = Type.Union([Type.Enum([...TI_STATES]), Type.Null()]);

const TaskInstance = Type.Object({
  dag_id: Type.String(),
  dag_run_id: Type.String(),
  task_id: Type.String(),
  /** -1: unmapped (Airflow's). */
  map_index: Type.Integer(),
  state: TiState,
  try_number: Type.Integer(),
  max_tries: Type.Integer(),
  priority_weight: Type.Number(),
  queue: Type.String(),
  pool: Type.String(),
  pool_slots: Type.Integer(),
  hostname: Type.Union([Type.String(), Type.Null()]),
  pid: Type.Union([Type.Integer(), Type.Null()]),
  start_date: NullableDateTime,
  end_date: NullableDateTime,
  scheduled_when: NullableDateTime,
  queued_when: NullableDateTime,
  updated_at: DateTimeString,
  next_method: Type.Union([Type.String(), Type.Null()]),
  trigger_id: Type.Union([Type.Integer(), Type.Null()]),
  trigger_timeout: NullableDateTime,
  error: Type.Union([Type.String(), Type.Null()]),
});

const RunParams = Type.Object({ dag_id: Type.String(), dag_run_id: Type.String() });
const TiParams = Type.Object({ dag_id: Type.String(), dag_run_id: Type.String(), task_id: Type.String() });
const MapIndexQuery = Type.Object({ map_index: Type.Integer({ minimum: -1, default: -1, description: 'the map index of a mapped task instance; -1: unmapped' }) });
const tiName = (taskId: string, mapIndex: number): string => (mapIndex >= 0 ? `${taskId}[${mapIndex}]` : taskId);

function tiJson(t: TaskInstanceRow) {
  return {
    dag_id: t.dag_id,
    dag_run_id: t.run_id,
    task_id: t.task_id,
    map_index: t.map_index,
    state: t.state,
    try_number: t.try_number,
    max_tries: t.max_tries,
    priority_weight: t.priority_weight,
    queue: t.queue,
    pool: t.pool,
    pool_slots: t.pool_slots,
    hostname: t.hostname,
    pid: t.pid,
    start_date: isoOrNull(t.start_date),
    end_date: isoOrNull(t.end_date),
    scheduled_when: isoOrNull(t.scheduled_at),
    queued_when: isoOrNull(t.queued_at),
    updated_at: iso(t.updated_at),
    next_method: t.next_method,
    trigger_id: t.trigger_id,
    trigger_timeout: isoOrNull(t.trigger_timeout),
    error: t.error,
  };
}

/** Task instances: list per run, detail, mark success/failed, clear. */
export function registerTaskInstanceRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/dags/:dag_id/dagRuns/:dag_run_id/taskInstances',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['task instances'],
        summary: "a run's task instances, paged",
        params: RunParams,
        querystring: Type.Object({
          ...PageQuery,
          order_by: orderByQuery(TI_ORDER_COLUMNS, 'task_id'),
          state: Type.Optional(Type.Array(Type.Enum([...TI_STATES, 'none']), { description: "only these states ('none': not scheduled yet); repeat the parameter" })),
        }),
        response: responses({ 200: Type.Object({ task_instances: Type.Array(TaskInstance), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const { dag_id: dagId, dag_run_id: runId } = request.params;
      const q = request.query;
      const { rows, total } = await listTaskInstancesPage(db, {
        dagId,
        runId,
        limit: q.limit,
        offset: q.offset,
        order: parseOrder(q.order_by, 'task_id'),
        states: q.state?.map((s) => (s === 'none' ? null : (s as (typeof TI_STATES)[number]))),
      });
      if (total === 0 && !(await getDagRun(db, dagId, runId))) throw notFound(`DAG '${dagId}' has no run '${runId}'`);
      return { task_instances: rows.map(tiJson), total_entries: total };
    },
  );

  app.get(
    '/dags/:dag_id/dagRuns/:dag_run_id/taskInstances/:task_id',
    { config: { role: 'viewer' }, schema: { tags: ['task instances'], summary: 'one task instance', params: TiParams, querystring: MapIndexQuery, response: responses({ 200: TaskInstance }) } },
    async (request) => {
      const { dag_id: dagId, dag_run_id: runId, task_id: taskId } = request.params;
      const mapIndex = request.query.map_index;
      const row = await getTaskInstance(db, { dagId, runId, taskId, mapIndex });
      if (!row) throw notFound(`no task instance ${dagId}.${tiName(taskId, mapIndex)} in run '${runId}'`);
      return tiJson(row);
    },
  );

  app.patch(
    '/dags/:dag_id/dagRuns/:dag_run_id/taskInstances/:task_id',
    {
      config: { role: 'operator', audit: 'task_instance.mark' },
      schema: {
        tags: ['task instances'],
        summary: 'mark a task instance success or failed (the scheduler then decides its downstream tasks)',
        params: TiParams,
        querystring: MapIndexQuery,
        body: Type.Object({ new_state: Type.Enum(['success', 'failed']) }),
        response: responses({ 200: TaskInstance }),
      },
    },
    async (request) => {
      const { dag_id: dagId, dag_run_id: runId, task_id: taskId } = request.params;
      const mapIndex = request.query.map_index;
      const marked = await markTaskInstance(db, { dagId, runId, taskId, mapIndex }, request.body.new_state);
      if (!marked) throw notFound(`no task instance ${dagId}.${tiName(taskId, mapIndex)} in run '${runId}'`);
      request.auditDetails = { new_state: request.body.new_state, previous_state: marked.previousState };
      return tiJson(marked.row);
    },
  );

  app.post(
    '/dags/:dag_id/clearTaskInstances',
    {
      config: { role: 'operator', audit: 'task_instance.clear' },
      schema: {
        tags: ['task instances'],
        summary: "reset a run's task instances (all, or those named) so they run again; a deferred one's trigger is cancelled",
        params: Type.Object({ dag_id: Type.String() }),
        body: Type.Object({
          dag_run_id: Type.String(),
          task_ids: Type.Optional(Type.Array(Type.String(), { description: "default: all the run's tasks" })),
        }),
        response: responses({
          200: Type.Object({ task_instances: Type.Array(Type.Object({ task_id: Type.String(), previous_state: TiState })), total_entries: Type.Integer() }),
        }),
      },
    },
    async (request) => {
      const { dag_id: dagId } = request.params;
      const { dag_run_id: runId, task_ids: taskIds = [] } = request.body;
      const found = await getDagDetail(db, dagId);
      if (!found) throw notFound(`DAG '${dagId}' not found: GET /api/v1/dags lists the DAGs`);
      if (!found.serialized) throw new ApiError(409, 'Conflict', `DAG '${dagId}' has not been parsed yet: wait for a DAG processor to parse its file`);
      const spec = new DagSpec(found.serialized);
      const unknown = taskIds.filter((t) => !spec.tasks.has(t));
      if (unknown.length > 0) throw badRequest(`body/task_ids: DAG '${dagId}' has no task ${unknown.map((t) => `'${t}'`).join(', ')} (its tasks: ${[...spec.tasks.keys()].join(', ')})`);
      if (!(await getDagRun(db, dagId, runId))) throw notFound(`DAG '${dagId}' has no run '${runId}'`);
      const retries = new Map([...spec.tasks.values()].map((t) => [t.taskId, t.retries]));
      const cleared = await clearTaskInstances(db, { dagId, runId, taskIds, retries });
      request.auditDetails = { dag_run_id: runId, task_ids: cleared.map((c) => c.taskId) };
      return { task_instances: cleared.map((c) => ({ task_id: c.taskId, previous_state: c.previousState })), total_entries: cleared.length };
    },
  );
}
