import { Type } from 'typebox';
import { getXcom } from '../../db/xcom.ts';
import { listXcoms, type XcomRow } from '../../db/xcom-list.ts';
import { notFound } from '../problem.ts';
import { DateTimeString, iso, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const Xcom = Type.Object({
  dag_id: Type.String(),
  dag_run_id: Type.String(),
  task_id: Type.String(),
  map_index: Type.Integer({ description: '-1: unmapped' }),
  key: Type.String(),
  value: Type.Unknown({ description: 'the JSON value' }),
  timestamp: DateTimeString,
});

const TiParams = { dag_id: Type.String(), dag_run_id: Type.String(), task_id: Type.String() };

const MapIndexQuery = { map_index: Type.Optional(Type.Integer({ minimum: -1, description: 'the map index of a mapped task instance' })) };

const xcomJson = (x: XcomRow) => ({ dag_id: x.dag_id, dag_run_id: x.run_id, task_id: x.task_id, map_index: x.map_index, key: x.key, value: x.value, timestamp: iso(x.created_at) });

/** A task instance's XComs (its return value is key `return_value`). */
export function registerXcomRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/dags/:dag_id/dagRuns/:dag_run_id/taskInstances/:task_id/xcomEntries',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['xcom'],
        summary: "a task instance's XComs, by key",
        params: Type.Object(TiParams),
        querystring: Type.Object({ ...PageQuery, ...MapIndexQuery, xcom_key: Type.Optional(Type.String()) }),
        response: responses({ 200: Type.Object({ xcom_entries: Type.Array(Xcom), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const { dag_id: dagId, dag_run_id: runId, task_id: taskId } = request.params;
      const { rows, total } = await listXcoms(db, { dagId, runId, taskId, key: request.query.xcom_key, mapIndex: request.query.map_index, limit: request.query.limit, offset: request.query.offset });
      return { xcom_entries: rows.map(xcomJson), total_entries: total };
    },
  );

  app.get(
    '/dags/:dag_id/dagRuns/:dag_run_id/taskInstances/:task_id/xcomEntries/:xcom_key',
    {
      config: { role: 'viewer' },
      schema: { tags: ['xcom'], summary: 'one XCom', params: Type.Object({ ...TiParams, xcom_key: Type.String() }), querystring: Type.Object(MapIndexQuery), response: responses({ 200: Xcom }) },
    },
    async (request) => {
      const { dag_id: dagId, dag_run_id: runId, task_id: taskId, xcom_key: key } = request.params;
      const mapIndex = request.query.map_index ?? -1;
      const value = await getXcom(db, { dagId, runId, taskId, mapIndex }, key);
      if (value === undefined) throw notFound(`no XCom '${key}' for ${dagId}.${taskId}${mapIndex >= 0 ? `[${mapIndex}]` : ''} in run '${runId}'`);
      const { rows } = await listXcoms(db, { dagId, runId, taskId, key, mapIndex, limit: 1, offset: 0 });
      return xcomJson(rows[0] as XcomRow);
    },
  );
}
