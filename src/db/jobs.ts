import { sql } from 'kysely';
import type { Db } from './database.ts';
import type { JobRow, JobState, JobType } from './schema.ts';

export interface NewJob {
  jobType: JobType;
  hostname: string;
  pid: number;
  capacity?: number;
}

export async function registerJob(db: Db, job: NewJob): Promise<number> {
  const row = await db
    .insertInto('job')
    .values({ job_type: job.jobType, hostname: job.hostname, pid: job.pid, state: 'running', capacity: job.capacity ?? null })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** Records that the job is alive, in database time, so hosts with skewed clocks agree. */
export async function heartbeatJob(db: Db, jobId: number): Promise<void> {
  await sql`UPDATE job SET latest_heartbeat = now() WHERE id = ${jobId}`.execute(db);
}

export async function endJob(db: Db, jobId: number, state: Exclude<JobState, 'running'>): Promise<void> {
  await sql`UPDATE job SET state = ${state}, end_date = now() WHERE id = ${jobId}`.execute(db);
}

/** Jobs of a type whose heartbeat is fresher than the threshold and which have not ended. */
export async function aliveJobs(db: Db, jobType: JobType, thresholdMs: number, hostname?: string): Promise<JobRow[]> {
  let query = db
    .selectFrom('job')
    .selectAll()
    .where('job_type', '=', jobType)
    .where('state', '=', 'running')
    .where('latest_heartbeat', '>', sql<Date>`now() - make_interval(secs => ${thresholdMs / 1000})`);
  if (hostname !== undefined) query = query.where('hostname', '=', hostname);
  return query.orderBy('latest_heartbeat', 'desc').execute();
}

/** Every job's hostname by id (to name the owner of a trigger, a queued task instance, …). */
export async function jobHostnames(db: Db): Promise<Map<number, string>> {
  const rows = await db.selectFrom('job').select(['id', 'hostname']).execute();
  return new Map(rows.map((j) => [j.id, j.hostname]));
}
