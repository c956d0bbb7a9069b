import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import { silentLogger } from '../src/common/logger.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun } from '../src/db/dag-runs.ts';
import { GraphileExecutor } from '../src/executors/graphile-executor.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { spawnDaemon, stopProcesses } from './support/processes.ts';
import { FIXTURES, runEnded, startScheduler } from './support/rig.ts';

const DAGS = path.join(FIXTURES, 'graphile-dags');

/**
 * Airflow's `task_queued_timeout` with a broker: a task on a queue no worker serves does not stay
 * queued forever. Its job is withdrawn (so a worker started later cannot run the stale try) and
 * the try is retried or failed with the queue named.
 */
describe('graphile executor: a task no worker takes', function () {
  this.timeout(60_000);
  let t: TestDatabase;
  let runsDir: string;

  beforeEach(async () => {
    t = await createTestDatabase();
    runsDir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-unserved-'));
  });
  afterEach(async () => {
    await stopProcesses();
    await stopAll();
    await t.drop();
    await rm(runsDir, { recursive: true, force: true });
  });

  it('withdraws its job after the queued timeout and retries or fails the try, naming the queue', async () => {
    const runsFile = path.join(runsDir, 'runs');
    const bag = await DagBag.load(DAGS);
    const executor = new GraphileExecutor({ parallelism: 8, database: t.database, logger: silentLogger() });
    const { scheduler } = await startScheduler(
      t.database,
      bag,
      { heartbeatIntervalMs: 300, healthCheckThresholdMs: 2000, pollIntervalMs: 500, queuedTimeoutMs: 1500, zombieCheckIntervalMs: 300 },
      executor,
    );
    const ended = runEnded(scheduler, 'unserved', 45_000);
    await createDagRun(t.database.db, { dagId: 'graphile_unserved', runId: 'unserved', conf: {}, logicalDate: new Date() });
    const ti = async (taskId: string) =>
      (await t.database.db.selectFrom('task_instance').select(['state', 'try_number', 'error']).where('run_id', '=', 'unserved').where('task_id', '=', taskId).executeTakeFirst()) ??
      { state: null, try_number: 0, error: null };

    const lonely = await eventually(async () => {
      const row = await ti('lonely');
      return row.state === 'up_for_retry' ? row : false;
    }, 'the unserved task to be retried', 20_000);
    expect(lonely.try_number).to.equal(1);
    expect(lonely.error).to.contain("no worker took it from queue 'nobody'");
    // A worker for that queue comes up: it runs the retry (try 2) and never the withdrawn try 1.
    spawnDaemon(['worker', '--queues', 'nobody', '--heartbeat-interval', '0.3', '--dags-folder', DAGS], { TSFLOW_DATABASE_URL: t.url, TSFLOW_TEST_RUNS_FILE: runsFile });

    expect((await ended).state).to.equal('failed');
    const lastTry = await ti('last_try');
    expect(lastTry.state).to.equal('failed');
    expect(lastTry.error).to.contain("no worker took it from queue 'nobody_either'");
    expect((await ti('lonely')).state).to.equal('success');
    expect((await readFile(runsFile, 'utf8')).split('\n').filter(Boolean)).to.deep.equal(['graphile_unserved.lonely.2']);
    const jobs = await sql<{ n: number }>`SELECT count(*)::int AS n FROM graphile_worker._private_jobs`.execute(t.database.db);
    expect(jobs.rows[0]?.n).to.equal(0);
  });
});
