import { sql } from 'kysely';
import { jobKeySql } from '../graphile/task-jobs.ts';
import type { Db } from './database.ts';
import { failLocked, type LockedRow, type LostTry, type RetryAt } from './lost-tries.ts';

/*
 * `tsflow worker` jobs, seen from the worker (claiming a task instance's job) and from schedulers
 * (finding dead workers) and the CLI (`workers list`).
 */

/** Records a worker's queues and graphile-worker worker ids on its job row. */
export async function describeWorker(db: Db, jobId: number, queues: readonly string[], graphileWorkerIds: readonly string[]): Promise<void> {
  await sql`UPDATE job SET queues = ${[...queues]}::text[], graphile_worker_ids = ${[...graphileWorkerIds]}::text[] WHERE id = ${jobId}`.execute(db);
}

export interface DeadWorker {
  jobId: number;
  hostname: string;
  lost: LostTry[];
}

/**
 * Workers whose heartbeat is older than `thresholdMs` (database clock): each one's task instances
 * still queued or running under it are retried or failed with the reason in `error`, the worker's
 * job row is marked failed (so this happens once per worker, hence at most once per try), and its
 * graphile-worker jobs are released (see releaseJobs).
 * One transaction; dead jobs and task instances are taken SKIP LOCKED, so two schedulers split
 * the work and a try being recorded right now (its row locked) is left to its writer.
 */
export async function failDeadWorkers(db: Db, thresholdMs: number, retryAt: RetryAt): Promise<DeadWorker[]> {
  return db.transaction().execute(async (trx) => {
    const { rows: dead } = await sql<{ id: number; hostname: string; graphile_worker_ids: string[] | null; silent_s: number }>`
      SELECT id, hostname, graphile_worker_ids, extract(epoch FROM now() - latest_heartbeat)::float8 AS silent_s FROM job
      WHERE job_type = 'worker' AND state = 'running' AND latest_heartbeat < now() - make_interval(secs => ${thresholdMs / 1000})
      FOR UPDATE SKIP LOCKED`.execute(trx);
    if (dead.length === 0) return [];
    const { rows: tis } = await sql<LockedRow & { worker_job_id: number }>`
      SELECT dag_id, run_id, task_id, map_index, state, try_number, max_tries, next_method, last_heartbeat_at, worker_job_id FROM task_instance
      WHERE state IN ('queued', 'running') AND worker_job_id = ANY(${dead.map((d) => d.id)}::int[])
      FOR UPDATE SKIP LOCKED`.execute(trx);
    const byId = new Map(dead.map((d) => [d.id, d]));
    const reasonFor = (row: LockedRow): string => {
      const worker = byId.get((row as LockedRow & { worker_job_id: number }).worker_job_id);
      return `the worker running try ${row.state === 'queued' && row.next_method === null ? row.try_number + 1 : row.try_number} ` +
        `(job ${worker?.id} on ${worker?.hostname}) stopped heartbeating ${Math.round(worker?.silent_s ?? 0)} s ago: it is presumed dead`;
    };
    const lost = await failLocked(trx, tis, reasonFor, retryAt);
    await sql`UPDATE job SET state = 'failed', end_date = now() WHERE id = ANY(${dead.map((d) => d.id)}::int[])`.execute(trx);
    const graphileIds = dead.flatMap((d) => d.graphile_worker_ids ?? []);
    if (graphileIds.length > 0) await releaseJobs(trx, graphileIds);
    return dead.map((d) => ({
      jobId: d.id,
      hostname: d.hostname,
      lost: lost.filter((l) => tis.some((t) => t.worker_job_id === d.id && t.dag_id === l.key.dagId && t.run_id === l.key.runId && t.task_id === l.key.taskId && t.map_index === (l.key.mapIndex ?? -1))),
    }));
  });
}

/**
 * The graphile-worker jobs a dead worker had locked. graphile-worker's `force_unlock_workers` alone
 * is not enough: a job counts its attempt when locked, and with max_attempts 1 an unlocked job is
 * never offered again. So a job whose task instance is still queued for that try (the worker died
 * before claiming it) is unlocked with its attempt given back — it is delivered to another worker,
 * as Celery redelivers an unacknowledged message — and every other one (its try was just failed, or
 * had ended) is deleted.
 */
async function releaseJobs(trx: Db, graphileWorkerIds: readonly string[]): Promise<void> {
  await sql`
    UPDATE graphile_worker._private_jobs j SET locked_at = NULL, locked_by = NULL, attempts = 0, updated_at = now()
    FROM task_instance t
    WHERE j.locked_by = ANY(${[...graphileWorkerIds]}::text[]) AND t.state = 'queued'
      AND j.key = ${jobKeySql('t')}`.execute(trx);
  await sql`DELETE FROM graphile_worker._private_jobs WHERE locked_by = ANY(${[...graphileWorkerIds]}::text[])`.execute(trx);
}

export interface WorkerSummary {
  jobId: number;
  hostname: string;
  pid: number;
  state: string;
  queues: string[];
  concurrency: number | null;
  runningTasks: number;
  heartbeatAgeSeconds: number;
  alive: boolean;
}

/** Every worker job that is running, or ended within `recentMs`, with its running task instances. */
export async function listWorkers(db: Db, thresholdMs: number, recentMs = 3_600_000): Promise<WorkerSummary[]> {
  const { rows } = await sql<{ id: number; hostname: string; pid: number; state: string; queues: string[] | null; capacity: number | null; running: number; age: number; alive: boolean }>`
    SELECT j.id, j.hostname, j.pid, j.state, j.queues, j.capacity,
      (SELECT count(*) FROM task_instance t WHERE t.worker_job_id = j.id AND t.state IN ('queued', 'running'))::int AS running,
      extract(epoch FROM now() - j.latest_heartbeat)::float8 AS age,
      j.state = 'running' AND j.latest_heartbeat > now() - make_interval(secs => ${thresholdMs / 1000}) AS alive
    FROM job j
    WHERE j.job_type = 'worker' AND (j.state = 'running' OR j.end_date > now() - make_interval(secs => ${recentMs / 1000}))
    ORDER BY j.hostname, j.id`.execute(db);
  return rows.map((r) => ({
    jobId: r.id,
    hostname: r.hostname,
    pid: r.pid,
    state: r.state,
    queues: r.queues ?? [],
    concurrency: r.capacity,
    runningTasks: r.running,
    heartbeatAgeSeconds: Math.round(r.age * 10) / 10,
    alive: r.alive,
  }));
}
