import { Type } from 'typebox';
import { DagSpec } from '../../dag-bag/serialized-dag.ts';
import { DAG_ORDER_COLUMNS, getDagDetail, listDags, type DagRow } from '../../db/dag-list.ts';
import { setDagPaused } from '../../db/dag-state.ts';
import { notFound, ApiError } from '../problem.ts';
import { DateTimeString, isoOrNull, iso, JsonObjectSchema, NullableDateTime, orderByQuery, PageQuery, parseOrder, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const Dag = Type.Object({
  dag_id: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  fileloc: Type.String(),
  is_paused: Type.Boolean(),
  is_active: Type.Boolean({ description: 'false once its file no longer defines it' }),
  last_parsed_time: DateTimeString,
  timetable_summary: Type.Union([Type.String(), Type.Null()]),
  tags: Type.Array(Type.String()),
  max_active_runs: Type.Integer(),
  max_active_tasks: Type.Integer(),
  next_dagrun_logical_date: NullableDateTime,
  next_dagrun_data_interval_start: NullableDateTime,
  next_dagrun_data_interval_end: NullableDateTime,
  next_dagrun_run_after: NullableDateTime,
});

const Task = Type.Object({
  task_id: Type.String(),
  operator: Type.String(),
  upstream_task_ids: Type.Array(Type.String()),
  downstream_task_ids: Type.Array(Type.String()),
  retries: Type.Integer(),
  queue: Type.String(),
  pool: Type.String(),
  pool_slots: Type.Integer(),
  priority_weight: Type.Number(),
});

const DagDetail = Type.Intersect([
  Dag,
  Type.Object({
    timezone: Type.Union([Type.String(), Type.Null()]),
    start_date: NullableDateTime,
    end_date: NullableDateTime,
    catchup: Type.Union([Type.Boolean(), Type.Null()]),
    params: JsonObjectSchema,
    tasks: Type.Array(Task),
  }),
]);

const DagIdParams = Type.Object({ dag_id: Type.String() });

export function dagJson(d: DagRow, tags: readonly string[]) {
  return {
    dag_id: d.dag_id,
    description: d.description,
    fileloc: d.fileloc,
    is_paused: d.is_paused,
    is_active: d.is_active,
    last_parsed_time: iso(d.last_parsed_at),
    timetable_summary: d.timetable_summary,
    tags: [...tags],
    max_active_runs: d.max_active_runs,
    max_active_tasks: d.max_active_tasks,
    next_dagrun_logical_date: isoOrNull(d.next_dagrun),
    next_dagrun_data_interval_start: isoOrNull(d.next_dagrun_data_interval_start),
    next_dagrun_data_interval_end: isoOrNull(d.next_dagrun_data_interval_end),
    next_dagrun_run_after: isoOrNull(d.next_dagrun_create_after),
  };
}

/** DAGs: list, detail (tasks, schedule, params), pause and unpause. */
export function registerDagRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/dags',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['dags'],
        summary: 'the DAGs, paged',
        querystring: Type.Object({
          ...PageQuery,
          order_by: orderByQuery(DAG_ORDER_COLUMNS, 'dag_id'),
          dag_id_pattern: Type.Optional(Type.String({ description: 'part of the DAG id (case-insensitive)' })),
          paused: Type.Optional(Type.Boolean()),
          only_active: Type.Boolean({ default: true, description: 'leave out DAGs whose file no longer defines them' }),
        }),
        response: responses({ 200: Type.Object({ dags: Type.Array(Dag), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const q = request.query;
      const { rows, total } = await listDags(db, {
        limit: q.limit,
        offset: q.offset,
        order: parseOrder(q.order_by, 'dag_id'),
        dagIdPattern: q.dag_id_pattern,
        paused: q.paused,
        onlyActive: q.only_active,
      });
      return { dags: rows.map((r) => dagJson(r, r.tags)), total_entries: total };
    },
  );

  app.get(
    '/dags/:dag_id',
    { config: { role: 'viewer' }, schema: { tags: ['dags'], summary: 'one DAG with its tasks, schedule and params', params: DagIdParams, response: responses({ 200: DagDetail }) } },
    async (request) => {
      const found = await getDagDetail(db, request.params.dag_id);
      if (!found) throw notFound(`DAG '${request.params.dag_id}' not found: GET /api/v1/dags lists the DAGs`);
      const s = found.serialized;
      return {
        ...dagJson(found.dag, s?.tags ?? []),
        timezone: s?.timezone ?? null,
        start_date: s?.startDate ?? null,
        end_date: s?.endDate ?? null,
        catchup: s?.catchup ?? null,
        params: s?.params ?? {},
        tasks: (s?.tasks ?? []).map((t) => ({
          task_id: t.taskId,
          operator: t.operator,
          upstream_task_ids: [...t.upstream],
          downstream_task_ids: [...t.downstream],
          retries: t.retries,
          queue: t.queue,
          pool: t.pool ?? 'default_pool',
          pool_slots: t.poolSlots ?? 1,
          priority_weight: t.priorityWeight,
        })),
      };
    },
  );

  app.patch(
    '/dags/:dag_id',
    {
      config: { role: 'operator', audit: 'dag.pause' },
      schema: {
        tags: ['dags'],
        summary: 'pause or unpause a DAG (unpausing recomputes its next run from now)',
        params: DagIdParams,
        body: Type.Object({ is_paused: Type.Boolean() }),
        response: responses({ 200: Dag }),
      },
    },
    async (request) => {
      const { dag_id: dagId } = request.params;
      const found = await getDagDetail(db, dagId);
      if (!found) throw notFound(`DAG '${dagId}' not found: GET /api/v1/dags lists the DAGs`);
      if (!found.serialized) throw new ApiError(409, 'Conflict', `DAG '${dagId}' has not been parsed yet: wait for a DAG processor to parse its file`);
      const { changed } = await setDagPaused(db, new DagSpec(found.serialized), request.body.is_paused);
      request.auditDetails = { is_paused: request.body.is_paused, changed };
      const after = await getDagDetail(db, dagId);
      return dagJson(after?.dag ?? found.dag, found.serialized.tags);
    },
  );
}
