import { DateTime } from 'luxon';
import { Type } from 'typebox';
import { manualRunOf } from '../../cli/active-dags.ts';
import { createDagRun, DagRunExistsError, getDagRun } from '../../db/dag-runs.ts';
import { RUN_ORDER_COLUMNS, listRuns } from '../../db/run-list.ts';
import type { DagRunRow, DagRunState } from '../../db/schema.ts';
import type { JsonObject } from '../../sdk/json.ts';
import { InvalidParamsError } from '../../sdk/params.ts';
import { badRequest, conflict, notFound } from '../problem.ts';
import { DateTimeString, iso, isoOrNull, JsonObjectSchema, NullableDateTime, orderByQuery, PageQuery, parseOrder, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

export const RunState = Type.Enum(['queued', 'running', 'success', 'failed']);

const DagRun = Type.Object({
  dag_id: Type.String(),
  dag_run_id: Type.String(),
  state: RunState,
  run_type: Type.Enum(['manual', 'scheduled', 'backfill', 'asset_triggered']),
  logical_date: DateTimeString,
  data_interval_start: NullableDateTime,
  data_interval_end: NullableDateTime,
  queued_at: DateTimeString,
  start_date: NullableDateTime,
  end_date: NullableDateTime,
  conf: JsonObjectSchema,
});

const RunParams = Type.Object({ dag_id: Type.String(), dag_run_id: Type.String() });

export function runJson(r: DagRunRow) {
  return {
    dag_id: r.dag_id,
    dag_run_id: r.run_id,
    state: r.state,
    run_type: r.run_type,
    logical_date: iso(r.logical_date),
    data_interval_start: isoOrNull(r.data_interval_start),
    data_interval_end: isoOrNull(r.data_interval_end),
    queued_at: iso(r.created_at),
    start_date: isoOrNull(r.start_date),
    end_date: isoOrNull(r.end_date),
    conf: r.conf,
  };
}

/** Runs: list (one DAG's, or every DAG's with `~`), one run, and trigger. */
export function registerDagRunRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/dags/:dag_id/dagRuns',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['dag runs'],
        summary: "a DAG's runs, paged (dag_id ~: every DAG's)",
        params: Type.Object({ dag_id: Type.String() }),
        querystring: Type.Object({
          ...PageQuery,
          order_by: orderByQuery(RUN_ORDER_COLUMNS, '-logical_date'),
          state: Type.Optional(Type.Array(RunState, { description: 'only runs in these states (repeat the parameter)' })),
          run_type: Type.Optional(Type.Enum(['manual', 'scheduled', 'backfill', 'asset_triggered'])),
          logical_date_gte: Type.Optional(DateTimeString),
          logical_date_lte: Type.Optional(DateTimeString),
        }),
        response: responses({ 200: Type.Object({ dag_runs: Type.Array(DagRun), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const q = request.query;
      const { rows, total } = await listRuns(db, {
        limit: q.limit,
        offset: q.offset,
        order: parseOrder(q.order_by, '-logical_date'),
        dagId: request.params.dag_id === '~' ? undefined : request.params.dag_id,
        states: q.state as DagRunState[] | undefined,
        runType: q.run_type,
        logicalDateGte: q.logical_date_gte === undefined ? undefined : new Date(q.logical_date_gte),
        logicalDateLte: q.logical_date_lte === undefined ? undefined : new Date(q.logical_date_lte),
      });
      if (total === 0 && request.params.dag_id !== '~') {
        const known = await db.selectFrom('dag').select('dag_id').where('dag_id', '=', request.params.dag_id).executeTakeFirst();
        if (!known) throw notFound(`DAG '${request.params.dag_id}' not found: GET /api/v1/dags lists the DAGs (~ lists every DAG's runs)`);
      }
      return { dag_runs: rows.map(runJson), total_entries: total };
    },
  );

  app.get(
    '/dags/:dag_id/dagRuns/:dag_run_id',
    { config: { role: 'viewer' }, schema: { tags: ['dag runs'], summary: 'one run and its state', params: RunParams, response: responses({ 200: DagRun }) } },
    async (request) => {
      const run = await getDagRun(db, request.params.dag_id, request.params.dag_run_id);
      if (!run) throw notFound(`DAG '${request.params.dag_id}' has no run '${request.params.dag_run_id}'`);
      return runJson(run);
    },
  );

  app.post(
    '/dags/:dag_id/dagRuns',
    {
      config: { role: 'operator', audit: 'dag_run.trigger' },
      schema: {
        tags: ['dag runs'],
        summary: 'trigger a run: conf is checked against the DAG\'s params; the data interval is the one its schedule infers',
        params: Type.Object({ dag_id: Type.String() }),
        body: Type.Object({
          dag_run_id: Type.Optional(Type.String({ minLength: 1, maxLength: 250, description: 'default manual__<logical date>' })),
          logical_date: Type.Optional(Type.Union([DateTimeString, Type.Null()], { description: 'default now' })),
          conf: Type.Optional(JsonObjectSchema),
        }),
        response: responses({ 200: DagRun }),
      },
    },
    async (request) => {
      const { dag_id: dagId } = request.params;
      const body = request.body;
      const dag = await db.selectFrom('dag').select(['dag_id']).where('dag_id', '=', dagId).where('is_active', '=', true).executeTakeFirst();
      if (!dag) throw notFound(`DAG '${dagId}' not found (or its file no longer defines it): GET /api/v1/dags lists the DAGs`);
      const logicalDate = body.logical_date ? DateTime.fromISO(body.logical_date, { setZone: true }).toUTC() : DateTime.utc();
      if (!logicalDate.isValid) throw badRequest(`body/logical_date '${body.logical_date}' is not a date: write ISO 8601 with an offset`);
      const conf = (body.conf ?? {}) as JsonObject;
      let run;
      try {
        run = await manualRunOf(db, dagId, logicalDate, conf);
      } catch (error) {
        if (error instanceof InvalidParamsError) throw badRequest(`body/conf: DAG '${dagId}': ${error.message}`);
        throw error;
      }
      const runId = body.dag_run_id ?? run.runId;
      try {
        await createDagRun(db, { ...run, runId });
      } catch (error) {
        if (error instanceof DagRunExistsError) throw conflict(`DAG '${dagId}' already has a run '${runId}': choose another dag_run_id`);
        throw error;
      }
      request.auditDetails = { dag_run_id: runId, logical_date: iso(run.logicalDate), conf_keys: Object.keys(conf) };
      const created = await getDagRun(db, dagId, runId);
      return runJson(created as DagRunRow);
    },
  );
}
