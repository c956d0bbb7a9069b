import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { createDagRun } from '../src/db/dag-runs.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';
import { isRunning, spawnDaemon, stopProcesses, type DaemonProcess } from './support/processes.ts';
import { FIXTURES } from './support/rig.ts';

const DAGS = path.join(FIXTURES, 'resilience-dags');

/**
 * Connections are dropped under every daemon while it works: a triggerer, a scheduler and its
 * LocalExecutor workers, all real processes. Every backend of the database is terminated again and
 * again while tasks defer, fire, resume and finish, so terminations land inside claims, event
 * writes, enqueues, startTry/finishTry and LISTEN. Each is an error of that operation, retried: no
 * daemon exits, no task is lost, and none needs a second try.
 */
describe('daemons whose connections are terminated mid-work', function () {
  this.timeout(120_000);
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    await stopProcesses();
    await t.drop();
  });

  const registered = (daemon: DaemonProcess, jobType: 'scheduler' | 'triggerer') =>
    eventually(
      async () =>
        (await t.database.db.selectFrom('job').select('id').where('pid', '=', daemon.child.pid!).where('job_type', '=', jobType).executeTakeFirst()) ?? false,
      `the ${jobType} process to register`,
      30_000,
    );

  it('keeps the triggerer, the scheduler and the workers up, and the run succeeds with every task on its first try', async () => {
    const env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: DAGS };
    const triggerer = spawnDaemon(['triggerer', '--heartbeat-interval', '0.5', '--health-check-threshold', '10', '--poll-interval', '1'], env);
    const scheduler = spawnDaemon(['scheduler', '--parallelism', '4'], env);
    await registered(triggerer, 'triggerer');
    await registered(scheduler, 'scheduler');
    const runId = 'under_fire';
    await createDagRun(t.database.db, { dagId: 'faults_dag', runId, conf: {}, logicalDate: new Date() });

    // A connection of its own, kept out of the terminations (the test's pool is terminated too).
    const admin = new pg.Client({ connectionString: t.url });
    await admin.connect();
    const killedApps = new Set<string>();
    let killedMidWork = 0;
    try {
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline) {
        const { rows } = await admin.query<{ app: string; busy: boolean }>(
          `SELECT application_name AS app, state IN ('active', 'idle in transaction') AS busy, pg_terminate_backend(pid)
           FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        );
        for (const row of rows) {
          killedApps.add(row.app);
          if (row.busy && row.app !== 'tsflow-test') killedMidWork++;
        }
        await new Promise((resolve) => setTimeout(resolve, 120)); // the pace of the terminations, not a wait for a result
      }
    } finally {
      await admin.end();
    }
    expect([...killedApps]).to.include.members(['tsflow-triggerer', 'tsflow-scheduler', 'tsflow-worker', 'tsflow-listen']);

    const finished = await eventually(
      async () => {
        const run = await t.database.db.selectFrom('dag_run').select('state').where('run_id', '=', runId).executeTakeFirst();
        return run && (run.state === 'success' || run.state === 'failed') ? run.state : false;
      },
      'the run to finish after the terminations',
      60_000,
      100,
    ).catch(async (error: unknown) => {
      const states = await t.database.db.selectFrom('task_instance').select(['task_id', 'state', 'try_number', 'error']).where('run_id', '=', runId).execute();
      console.error(JSON.stringify(states), '\nTRIGGERER', triggerer.stderr().slice(-4000), '\nSCHEDULER', scheduler.stderr().slice(-6000));
      throw error;
    });
    const tis = await t.database.db.selectFrom('task_instance').select(['task_id', 'state', 'try_number', 'error']).where('run_id', '=', runId).execute();
    const notFirstTry = tis.filter((ti) => ti.state !== 'success' || ti.try_number !== 1);
    const lostTries = scheduler.stderr().split('\n').filter((line) => /executor reported|zombie|stuck in queued|could not start|"level":50/.test(line));
    expect(notFirstTry, `terminated ${killedMidWork} backends mid-work; the scheduler said:\n${lostTries.join('\n')}`).to.deep.equal([]);
    expect(finished).to.equal('success');
    expect(tis).to.have.length(31);
    const xcoms = await sql<{ n: number }>`SELECT count(*)::int AS n FROM xcom WHERE run_id = ${runId}`.execute(t.database.db);
    expect(xcoms.rows[0]?.n).to.equal(31);

    expect(isRunning(triggerer), `the triggerer exited:\n${triggerer.stderr()}`).to.equal(true);
    expect(isRunning(scheduler), `the scheduler exited:\n${scheduler.stderr()}`).to.equal(true);
    expect(triggerer.stderr()).not.to.match(/Unhandled|uncaught/i);
    expect(scheduler.stderr()).not.to.match(/Unhandled|uncaught/i);
    triggerer.child.kill('SIGTERM');
    scheduler.child.kill('SIGTERM');
    expect(await triggerer.exited).to.equal(0);
    expect(await scheduler.exited).to.equal(0);
  });
});
