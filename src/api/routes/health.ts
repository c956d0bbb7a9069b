import { Type } from 'typebox';
import { componentHeartbeats } from '../../db/job-list.ts';
import type { JobType } from '../../db/schema.ts';
import { isoOrNull, NullableDateTime, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const Status = Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy'), Type.Null()]);
const Component = (heartbeat: string) =>
  Type.Object({ status: Status, [heartbeat]: NullableDateTime, instances: Type.Integer({ description: 'running jobs with a fresh heartbeat' }) });

const Health = Type.Object({
  metadatabase: Type.Object({ status: Type.Union([Type.Literal('healthy'), Type.Literal('unhealthy')]) }),
  scheduler: Component('latest_scheduler_heartbeat'),
  triggerer: Component('latest_triggerer_heartbeat'),
  dag_processor: Component('latest_dag_processor_heartbeat'),
  worker: Component('latest_worker_heartbeat'),
});

/**
 * `GET /api/v1/health`, Airflow's shape: each component healthy when one of its running jobs has a
 * heartbeat within the threshold. The scheduler is unhealthy when none is; the others are null when
 * none runs (they are optional), unhealthy when some run but all are silent. A database error makes
 * `metadatabase` unhealthy and every component's status null. Always 200: the body says what is wrong.
 */
export function registerHealthRoutes(app: ApiApp, { database, options }: RouteContext): void {
  app.get(
    '/health',
    { config: { public: true }, schema: { tags: ['monitor'], summary: "each component's status and latest heartbeat", security: [], response: responses({ 200: Health }) } },
    async () => {
      const component = (type: JobType, heartbeats: Awaited<ReturnType<typeof componentHeartbeats>> | undefined, required: boolean) => {
        const beat = heartbeats?.get(type);
        const status = heartbeats === undefined ? null : beat && beat.alive > 0 ? 'healthy' : beat || required ? 'unhealthy' : null;
        return { status, latest: isoOrNull(beat?.latestHeartbeat), instances: beat?.alive ?? 0 } as const;
      };
      let heartbeats: Awaited<ReturnType<typeof componentHeartbeats>> | undefined;
      try {
        heartbeats = await componentHeartbeats(database.db, options.healthThresholdMs);
      } catch {
        heartbeats = undefined;
      }
      const scheduler = component('scheduler', heartbeats, true);
      const triggerer = component('triggerer', heartbeats, false);
      const processor = component('dag_processor', heartbeats, false);
      const worker = component('worker', heartbeats, false);
      return {
        metadatabase: { status: heartbeats === undefined ? ('unhealthy' as const) : ('healthy' as const) },
        scheduler: { status: scheduler.status, latest_scheduler_heartbeat: scheduler.latest, instances: scheduler.instances },
        triggerer: { status: triggerer.status, latest_triggerer_heartbeat: triggerer.latest, instances: triggerer.instances },
        dag_processor: { status: processor.status, latest_dag_processor_heartbeat: processor.latest, instances: processor.instances },
        worker: { status: worker.status, latest_worker_heartbeat: worker.latest, instances: worker.instances },
      };
    },
  );
}
