import { expect } from 'chai';
import { sql } from 'kysely';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import type { TaskInstanceKey } from '../src/db/schema.ts';
import { sleep } from '../src/common/sleep.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { startScheduler, taskInstance } from './support/rig.ts';

/*
 * After a database outage longer than the health threshold, every heartbeat in the database is
 * stale — the scheduler's own, its peers', the running tries'. The first scheduler back must not take
 * live peers for dead: it judges a worker by its heartbeat (and a try as a zombie) only once its own
 * heartbeat has landed for a whole threshold. A scheduler that has just started is in exactly that
 * position, so these tests start one against heartbeats that are already old, deterministically.
 */
describe('a scheduler judges peers only after its own heartbeat has held for a threshold', function () {
  this.timeout(30_000);
  const THRESHOLD_MS = 3000;
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
    await upsertDags(t.database.db, [{ dagId: 'far', fileloc: '' }]);
    await createDagRun(t.database.db, { dagId: 'far', runId: 'r', conf: {}, logicalDate: new Date() });
  });
  afterEach(async () => {
    await stopAll();
    await t.drop();
  });

  /** A `tsflow worker` job and the try it runs, both last heard of `silentS` seconds ago (database clock). */
  async function silentWorker(silentS: number): Promise<{ jobId: number; key: TaskInstanceKey }> {
    const { rows } = await sql<{ id: number }>`
      INSERT INTO job (job_type, hostname, pid, state, start_date, latest_heartbeat)
      VALUES ('worker', 'far-away', 4242, 'running', now() - interval '1 hour', now() - make_interval(secs => ${silentS}))
      RETURNING id`.execute(t.database.db);
    const jobId = rows[0]!.id;
    const key = { dagId: 'far', runId: 'r', taskId: 'long' };
    await sql`
      INSERT INTO task_instance (dag_id, run_id, task_id, state, try_number, max_tries, start_date, last_heartbeat_at, hostname, pid, worker_job_id)
      VALUES ('far', 'r', 'long', 'running', 1, 3, now() - interval '1 hour', now() - make_interval(secs => ${silentS}), 'far-away', 4343, ${jobId})`.execute(t.database.db);
    return { jobId, key };
  }

  const beat = (jobId: number, key: TaskInstanceKey) =>
    t.database.db.transaction().execute(async (trx) => {
      await sql`UPDATE job SET latest_heartbeat = now() WHERE id = ${jobId}`.execute(trx);
      await sql`UPDATE task_instance SET last_heartbeat_at = now() WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND task_id = ${key.taskId}`.execute(trx);
    });
  const workerState = async (jobId: number) => (await sql<{ state: string }>`SELECT state FROM job WHERE id = ${jobId}`.execute(t.database.db)).rows[0]?.state;
  const options = { heartbeatIntervalMs: 200, healthCheckThresholdMs: THRESHOLD_MS, zombieThresholdMs: THRESHOLD_MS, zombieCheckIntervalMs: 100, pollIntervalMs: 100 };

  it('a worker silent since before the scheduler came up, whose heartbeat lands within that threshold, keeps its task', async () => {
    const { jobId, key } = await silentWorker(60);
    await startScheduler(t.database, DagBag.of([]), options);
    // The worker is back shortly after the scheduler (as after the same outage), and beats on.
    await sleep(500);
    const until = Date.now() + 2 * THRESHOLD_MS;
    while (Date.now() < until) {
      await beat(jobId, key);
      await sleep(200);
    }
    const row = await taskInstance(t.database, key);
    expect([row.state, row.try_number, row.error], 'the try still running, untouched').to.deep.equal(['running', 1, null]);
    expect(await workerState(jobId), 'the worker still counted alive').to.equal('running');
  });

  it('one that stays silent is judged dead, but only once the scheduler has beaten for the threshold', async () => {
    const { jobId, key } = await silentWorker(60);
    const started = Date.now();
    await startScheduler(t.database, DagBag.of([]), options);
    const judgedAt = await eventually(async () => ((await workerState(jobId)) === 'failed' ? Date.now() : undefined), 'the silent worker judged dead', 15_000);
    expect(judgedAt - started, 'not before the scheduler had beaten for a whole threshold').to.be.at.least(THRESHOLD_MS);
    const row = await taskInstance(t.database, key);
    expect(row.state, 'its try retried').to.equal('up_for_retry');
    // As a dead worker's try or as a zombie, whichever check came first: both are heartbeat judgements.
    expect(row.error).to.match(/stopped heartbeating/);
  });
});
