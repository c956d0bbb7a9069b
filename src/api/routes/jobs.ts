import { Type } from 'typebox';
import { listJobs } from '../../db/job-list.ts';
import { DateTimeString, iso, isoOrNull, NullableDateTime, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const Job = Type.Object({
  id: Type.Integer(),
  job_type: Type.Enum(['scheduler', 'triggerer', 'dag_processor', 'worker']),
  state: Type.Enum(['running', 'success', 'failed']),
  hostname: Type.String(),
  pid: Type.Integer(),
  capacity: Type.Union([Type.Integer(), Type.Null()]),
  queues: Type.Union([Type.Array(Type.String()), Type.Null()]),
  start_date: DateTimeString,
  end_date: NullableDateTime,
  latest_heartbeat: DateTimeString,
  heartbeat_age_seconds: Type.Number(),
  alive: Type.Boolean({ description: 'running, with a heartbeat within the health threshold' }),
});

/** Jobs: the schedulers, triggerers, DAG processors and workers, newest first, with their heartbeat age. */
export function registerJobRoutes(app: ApiApp, { database, options }: RouteContext): void {
  app.get(
    '/jobs',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['jobs'],
        summary: 'daemon jobs with heartbeat age, newest first',
        querystring: Type.Object({
          ...PageQuery,
          job_type: Type.Optional(Type.Enum(['scheduler', 'triggerer', 'dag_processor', 'worker'])),
          state: Type.Optional(Type.Enum(['running', 'success', 'failed'])),
        }),
        response: responses({ 200: Type.Object({ jobs: Type.Array(Job), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const q = request.query;
      const { rows, total } = await listJobs(database.db, { limit: q.limit, offset: q.offset, jobType: q.job_type, state: q.state, thresholdMs: options.healthThresholdMs });
      return {
        jobs: rows.map((j) => ({
          id: j.id,
          job_type: j.job_type,
          state: j.state,
          hostname: j.hostname,
          pid: j.pid,
          capacity: j.capacity,
          queues: j.queues,
          start_date: iso(j.start_date),
          end_date: isoOrNull(j.end_date),
          latest_heartbeat: iso(j.latest_heartbeat),
          heartbeat_age_seconds: Math.round(j.heartbeat_age_seconds * 10) / 10,
          alive: j.alive,
        })),
        total_entries: total,
      };
    },
  );
}
