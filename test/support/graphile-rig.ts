import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import type { TestDatabase } from './database.ts';
import { eventually } from './events.ts';
import { spawnDaemon, type DaemonProcess } from './processes.ts';
import { FIXTURES } from './rig.ts';

/*
 * The graphile executor's test rig (test/graphile-executor.test.ts, test/graphile-faults.test.ts):
 * real `tsflow worker` processes on the fixture DAGs of test/fixtures/graphile-dags, which append a
 * line per execution to a runs file.
 */

export const GRAPHILE_DAGS = path.join(FIXTURES, 'graphile-dags');

export interface WorkerSpec {
  hostname: string;
  /** `--queues`. */
  queues: string;
  /** TSFLOW_TEST_RUNS_FILE: where the fixture tasks record each execution. */
  runsFile: string;
  extra?: string[];
  /** TSFLOW_DATABASE_URL when not the test database's own (a port where nothing listens yet). */
  url?: string;
}

/** Spawns a `tsflow worker` (heartbeat 0.3 s, poll 0.5 s); see `workerStarted` to wait until it takes jobs. */
export function spawnWorker(t: TestDatabase, spec: WorkerSpec): DaemonProcess {
  return spawnDaemon(['worker', '--queues', spec.queues, '--heartbeat-interval', '0.3', '--poll-interval', '0.5', '--dags-folder', GRAPHILE_DAGS, ...(spec.extra ?? [])], {
    TSFLOW_DATABASE_URL: spec.url ?? t.url,
    TSFLOW_HOSTNAME: spec.hostname,
    TSFLOW_TEST_RUNS_FILE: spec.runsFile,
  });
}

/** Resolves with the worker's job id once it registered and graphile-worker runs in it (it takes jobs from then on). */
export async function workerStarted(t: TestDatabase, daemon: DaemonProcess, what: string, timeoutMs = 30_000): Promise<number> {
  const job = await eventually(
    async () =>
      (await t.database.db.selectFrom('job').select('id').where('pid', '=', daemon.child.pid!).where('job_type', '=', 'worker').executeTakeFirst()) ?? false,
    `worker ${what} to register`,
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; its stderr: ${daemon.stderr()}`);
  });
  // Its graphile-worker ids are written once graphile-worker runs: then it takes jobs.
  await eventually(
    async () => ((await t.database.db.selectFrom('job').select('graphile_worker_ids').where('id', '=', job.id).executeTakeFirstOrThrow()).graphile_worker_ids?.length ?? 0) > 0,
    `worker ${what} to run graphile-worker`,
    timeoutMs,
  );
  return job.id;
}

export async function startWorker(t: TestDatabase, spec: WorkerSpec): Promise<{ daemon: DaemonProcess; jobId: number }> {
  const daemon = spawnWorker(t, spec);
  return { daemon, jobId: await workerStarted(t, daemon, spec.hostname) };
}

/** The lines the fixture tasks appended, in order. */
export async function readRuns(runsFile: string): Promise<string[]> {
  return (await readFile(runsFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
}

/** Each task instance of a run, with the host of the worker that took its last job (the runner clears `hostname` when a try ends). */
export function taskInstancesOf(t: TestDatabase, runId: string) {
  return t.database.db
    .selectFrom('task_instance as ti')
    .leftJoin('job as j', 'j.id', 'ti.worker_job_id')
    .select(['ti.task_id', 'ti.state', 'ti.try_number', 'ti.worker_job_id', 'ti.queued_by_job_id', 'j.hostname', 'ti.error'])
    .where('ti.run_id', '=', runId)
    .orderBy('ti.task_id')
    .execute();
}

/** graphile-worker jobs in the database (waiting, locked, or failed). */
export async function graphileJobCount(t: TestDatabase): Promise<number> {
  return (await sql<{ n: number }>`SELECT count(*)::int AS n FROM graphile_worker._private_jobs`.execute(t.database.db)).rows[0]?.n ?? -1;
}

/** Resolves when the run is in a final state (polling the database: the scheduler is another process). */
export function runFinished(t: TestDatabase, runId: string, timeoutMs: number): Promise<string> {
  return eventually(
    async () => {
      const run = await t.database.db.selectFrom('dag_run').select('state').where('run_id', '=', runId).executeTakeFirst();
      return run && (run.state === 'success' || run.state === 'failed') ? run.state : false;
    },
    `run ${runId} to finish`,
    timeoutMs,
    100,
  );
}
