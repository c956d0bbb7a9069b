import path from 'node:path';
import { expect } from 'chai';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun } from '../src/db/dag-runs.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { spawnDaemon, stopProcesses } from './support/processes.ts';
import { FIXTURES, runEnded, startScheduler } from './support/rig.ts';

const DAGS = path.join(FIXTURES, 'resilience-dags');

/**
 * A scheduler SIGKILLed with task instances queued that its executor never started: a live scheduler
 * hands them back to `scheduled` once the dead one's heartbeat is past the health threshold — not
 * after the 600 s queued timeout — and runs each exactly once, on its first try.
 */
describe('a SIGKILLed scheduler with queued task instances', function () {
  this.timeout(90_000);
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    await stopProcesses();
    await stopAll();
    await t.drop();
  });

  it('has its queued task instances run by a live scheduler within the health threshold, each once', async () => {
    // The victim's workers never finish importing the DAG file, so what it queues stays queued.
    const victim = spawnDaemon(['scheduler', '--parallelism', '4', '--heartbeat-interval', '0.3', '--health-check-threshold', '2'], {
      TSFLOW_DATABASE_URL: t.url,
      TSFLOW_DAGS_FOLDER: DAGS,
      TSFLOW_TEST_HANG_WORKER: '1',
    });
    const job = await eventually(
      async () =>
        (await t.database.db.selectFrom('job').select('id').where('pid', '=', victim.child.pid!).where('job_type', '=', 'scheduler').executeTakeFirst()) ?? false,
      'the victim scheduler to register',
      30_000,
    );
    const runId = 'queued_then_orphaned';
    await createDagRun(t.database.db, { dagId: 'takeover_dag', runId, conf: {}, logicalDate: new Date() });
    const queuedByVictim = () =>
      t.database.db.selectFrom('task_instance').select('task_id').where('run_id', '=', runId).where('state', '=', 'queued').where('queued_by_job_id', '=', job.id).execute();
    await eventually(async () => (await queuedByVictim()).length === 4, 'the victim to queue all four task instances', 30_000);

    // A live scheduler leaves a live scheduler's queue alone: its heartbeats go on well past 2 s.
    const bag = await DagBag.load(DAGS);
    const { scheduler } = await startScheduler(t.database, bag, { heartbeatIntervalMs: 300, healthCheckThresholdMs: 2000 });
    const sinceBeat = () =>
      t.database.db.selectFrom('job').select('latest_heartbeat').where('id', '=', scheduler.jobId!).executeTakeFirstOrThrow();
    const firstBeat = (await sinceBeat()).latest_heartbeat.getTime();
    await eventually(async () => (await sinceBeat()).latest_heartbeat.getTime() > firstBeat + 2500, 'the live scheduler to beat past a threshold');
    expect(await queuedByVictim(), 'a live scheduler took a live one\'s queue').to.have.length(4);

    const ended = runEnded(scheduler, runId, 30_000);
    victim.child.kill('SIGKILL');
    await victim.exited;
    expect((await ended).state).to.equal('success');
    const tis = await t.database.db.selectFrom('task_instance').select(['task_id', 'state', 'try_number', 'error']).where('run_id', '=', runId).execute();
    expect(tis.map((ti) => [ti.state, ti.try_number, ti.error])).to.deep.equal(Array(4).fill(['success', 1, null]));
  });
});
