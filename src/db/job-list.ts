import { sql } from 'kysely';
import type { Db } from './database.ts';
import type { Listed, Page } from './listing.ts';
import type { JobRow, JobState, JobType } from './schema.ts';

export interface JobListQuery extends Page {
  readonly jobType?: JobType | undefined;
  readonly state?: JobState | undefined;
  /** A running job whose heartbeat is older than this is reported not alive. */
  readonly thresholdMs: number;
}

export type JobListing = JobRow & { heartbeat_age_seconds: number; alive: boolean };

/** Jobs (schedulers, triggerers, DAG processors, workers), newest first, with their heartbeat age in database time. */
export async function listJobs(db: Db, query: JobListQuery): Promise<Listed<JobListing>> {
  const base = db
    .selectFrom('job')
    .$if(query.jobType !== undefined, (q) => q.where('job_type', '=', query.jobType as JobType))
    .$if(query.state !== undefined, (q) => q.where('state', '=', query.state as JobState));
  const [rows, count] = await Promise.all([
    base
      .selectAll()
      .select([
        sql<number>`extract(epoch FROM now() - latest_heartbeat)::float8`.as('heartbeat_age_seconds'),
        sql<boolean>`state = 'running' AND latest_heartbeat > now() - make_interval(secs => ${query.thresholdMs / 1000})`.as('alive'),
      ])
      .orderBy('id', 'desc')
      .limit(query.limit)
      .offset(query.offset)
      .execute(),
    base.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { rows, total: Number(count.n) };
}

export interface ComponentHeartbeat {
  jobType: JobType;
  /** Running jobs of this type with a heartbeat within the threshold. */
  alive: number;
  /** Running jobs of this type. */
  running: number;
  latestHeartbeat: Date | null;
}

/** Per job type: how many running jobs there are, how many are alive, and the latest heartbeat (job_alive_idx). */
export async function componentHeartbeats(db: Db, thresholdMs: number): Promise<Map<JobType, ComponentHeartbeat>> {
  const { rows } = await sql<{ job_type: JobType; alive: number; running: number; latest: Date | null }>`
    SELECT job_type,
      count(*) FILTER (WHERE latest_heartbeat > now() - make_interval(secs => ${thresholdMs / 1000}))::int AS alive,
      count(*)::int AS running,
      max(latest_heartbeat) AS latest
    FROM job WHERE state = 'running' GROUP BY job_type`.execute(db);
  return new Map(rows.map((r) => [r.job_type, { jobType: r.job_type, alive: r.alive, running: r.running, latestHeartbeat: r.latest }]));
}
