import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import { silentLogger } from '../src/common/logger.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun } from '../src/db/dag-runs.ts';
import { setPool } from '../src/db/pools.ts';
import { GraphileExecutor } from '../src/executors/graphile-executor.ts';
import type { SchedulerOptions } from '../src/scheduler/scheduler.ts';
import { freePort, TcpProxy } from './support/cli-process.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { GRAPHILE_DAGS, graphileJobCount, readRuns, runFinished, spawnWorker, startWorker, taskInstancesOf, workerStarted } from './support/graphile-rig.ts';
import { childPids, isRunning, spawnDaemon, stopProcesses, type DaemonProcess } from './support/processes.ts';
import { runEnded, startScheduler } from './support/rig.ts';
import { testServerControl } from './support/server-control.ts';

/**
 * The graphile executor's faults with real processes: a `tsflow scheduler` SIGKILLed with 100 task
 * instances queued, PostgreSQL restarted under a worker and a scheduler, a worker started before its
 * database, and a pool shared by two schedulers and two workers.
 */
describe('graphile executor: faults and limits', function () {
  this.timeout(120_000);
  let t: TestDatabase;
  let bag: DagBag;
  let runsDir: string;
  let runsFile: string;
  let proxy: TcpProxy | undefined;

  before(async () => {
    bag = await DagBag.load(GRAPHILE_DAGS);
  });
  beforeEach(async () => {
    t = await createTestDatabase();
    runsDir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-graphile-faults-'));
    runsFile = path.join(runsDir, 'runs');
  });
  afterEach(async () => {
    await stopProcesses();
    await stopAll();
    await proxy?.close();
    proxy = undefined;
    await t.drop();
    await rm(runsDir, { recursive: true, force: true });
  });

  const tis = (runId: string) => taskInstancesOf(t, runId);
  const runs = () => readRuns(runsFile);

  /** A `tsflow scheduler --executor graphile` process, and its job id once it registered. */
  async function cliScheduler(extra: string[] = []): Promise<{ daemon: DaemonProcess; jobId: number }> {
    const daemon = spawnDaemon(['scheduler', '--executor', 'graphile', '--parallelism', '200', '--dags-folder', GRAPHILE_DAGS, ...extra], { TSFLOW_DATABASE_URL: t.url });
    const job = await eventually(
      async () => (await t.database.db.selectFrom('job').select('id').where('pid', '=', daemon.child.pid!).where('job_type', '=', 'scheduler').executeTakeFirst()) ?? false,
      'the scheduler process to register',
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; its stderr: ${daemon.stderr()}`);
    });
    return { daemon, jobId: job.id };
  }

  const dagParsed = (dagId: string) =>
    eventually(async () => (await t.database.db.selectFrom('dag').select('dag_id').where('dag_id', '=', dagId).executeTakeFirst()) ?? false, `DAG ${dagId} to be parsed`, 30_000);

  /** Every graphile-worker job as `key@id.revision`: a job added again for the same try would change its revision (job_key_mode replace). */
  const jobSnapshot = async (): Promise<string[]> =>
    (await sql<{ s: string }>`SELECT key || '@' || id || '.' || revision AS s FROM graphile_worker._private_jobs ORDER BY key`.execute(t.database.db)).rows.map((r) => r.s);

  /** What the processes of this test have in their environment. */
  const ours = (): string[] => [`TSFLOW_DATABASE_URL=${t.url}`, `TSFLOW_TEST_RUNS_FILE=${runsFile}`];
  const noProcessLeft = () => eventually(async () => (await processesWith(ours())).length === 0 || undefined, 'every process of the test (and their children) to exit', 15_000, 100);

  /** SIGTERM, and the exit code. */
  const stopped = (daemon: DaemonProcess): Promise<number | null> => {
    daemon.child.kill('SIGTERM');
    return daemon.exited;
  };

  it('a SIGKILLed `tsflow scheduler --executor graphile` with 100 queued: a second process adopts them, adds no job, each runs once', async function () {
    this.timeout(240_000);
    const args = ['--heartbeat-interval', '0.5', '--health-check-threshold', '4'];
    const first = await cliScheduler(args);
    await dagParsed('graphile_adopt');
    await createDagRun(t.database.db, { dagId: 'graphile_adopt', runId: 'adopt', conf: {}, logicalDate: new Date() });
    await eventually(
      async () => (await tis('adopt')).filter((ti) => ti.state === 'queued' && ti.queued_by_job_id === first.jobId).length === 100,
      'the first scheduler to queue all 100',
      60_000,
      100,
    );
    expect(await graphileJobCount(t)).to.equal(100);
    const jobsBefore = await jobSnapshot();

    const children = await childPids(first.daemon.child.pid!);
    first.daemon.child.kill('SIGKILL');
    expect(await first.daemon.exited).to.equal(null);
    // Whatever it had started (DAG parsers, a DAG code host) sees its parent gone and exits.
    await eventually(async () => (await processesWith(ours())).length === 0 || undefined, `the killed scheduler's processes (children then: ${children.join(', ') || 'none'}) to exit`, 15_000, 100);

    const second = await cliScheduler(args);
    await eventually(
      async () => (await tis('adopt')).filter((ti) => ti.state === 'queued' && ti.queued_by_job_id === second.jobId).length === 100,
      'the second scheduler to adopt all 100',
      60_000,
      100,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; its stderr: ${second.daemon.stderr()}`);
    });
    expect(await jobSnapshot(), 'the same 100 jobs, none added again').to.deep.equal(jobsBefore);
    expect(second.daemon.stderr()).to.contain('adopted the queued task instances of a dead scheduler');
    expect(second.daemon.stderr()).not.to.contain('go back to scheduled');

    const worker = await startWorker(t, { hostname: 'host-adopter', queues: 'adopt', runsFile, extra: ['--concurrency', '8'] });
    expect(await runFinished(t, 'adopt', 150_000)).to.equal('success');
    const rows = await tis('adopt');
    expect(rows.filter((ti) => ti.state !== 'success' || ti.try_number !== 1 || ti.worker_job_id !== worker.jobId)).to.deep.equal([]);
    const lines = await runs();
    expect(lines).to.have.length(100);
    expect(new Set(lines)).to.deep.equal(new Set(rows.map((ti) => `graphile_adopt.${ti.task_id}.1`)));
    await eventually(async () => (await graphileJobCount(t)) === 0, 'every job completed', 15_000);
    expect(second.daemon.stderr()).not.to.contain('go back to scheduled');

    expect((await childPids(worker.daemon.child.pid!)).length, 'the worker\'s warm task processes').to.be.within(1, 8);
    expect(await stopped(worker.daemon)).to.equal(0);
    expect(await stopped(second.daemon)).to.equal(0);
    await noProcessLeft();
  });

  it('a PostgreSQL restart under a running `tsflow worker` and scheduler: same worker process, every task ends once, a new run succeeds on it', async function () {
    const control = testServerControl();
    if (!control) {
      this.skip(); // TSFLOW_TEST_DATABASE_URL names a shared server, which the tests never restart
      return;
    }
    this.timeout(180_000);
    const worker = await startWorker(t, { hostname: 'host-restart', queues: 'restart,default,heavy', runsFile, extra: ['--concurrency', '3'] });
    const scheduler = await cliScheduler();
    await dagParsed('graphile_restart');
    await createDagRun(t.database.db, { dagId: 'graphile_restart', runId: 'before', conf: {}, logicalDate: new Date() });
    // In flight: tasks running on the worker (it runs 3 at once), others queued with their jobs waiting.
    await eventually(
      async () => {
        const states = (await tis('before')).map((ti) => ti.state);
        return states.filter((s) => s === 'running').length >= 2 && states.includes('queued');
      },
      'tasks running and queued',
      60_000,
      50,
    );

    await control.stop();
    try {
      // A task ends while the server is down: its outcome waits for the server, the task process alive.
      await eventually(async () => worker.daemon.stderr().includes("could not record the try's outcome") || undefined, 'a task to end during the outage', 20_000, 50);
    } finally {
      await control.start();
    }

    const outcome = await runFinished(t, 'before', 120_000).catch(async (error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(await tis('before'))}\nworker: ${worker.daemon.stderr().slice(-6000)}\nscheduler: ${scheduler.daemon.stderr().slice(-4000)}`);
    });
    expect(outcome, `${JSON.stringify(await tis('before'))}\nworker: ${worker.daemon.stderr().slice(-6000)}\nscheduler: ${scheduler.daemon.stderr().slice(-4000)}`).to.equal('success');
    expect(isRunning(worker.daemon), `the worker exited: ${worker.daemon.stderr()}`).to.equal(true);
    expect(isRunning(scheduler.daemon), `the scheduler exited: ${scheduler.daemon.stderr()}`).to.equal(true);
    const rows = await tis('before');
    expect(rows.map((ti) => [ti.task_id, ti.state, ti.try_number, ti.worker_job_id])).to.deep.equal(
      rows.map((ti) => [ti.task_id, 'success', 1, worker.jobId]),
    );
    const lines = (await runs()).filter((line) => line.startsWith('graphile_restart.'));
    expect([...lines].sort()).to.deep.equal(rows.flatMap((ti) => [`graphile_restart.${ti.task_id}.1.end`, `graphile_restart.${ti.task_id}.1.start`]).sort());

    // Through the same worker, after the restart.
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'after', conf: {}, logicalDate: new Date() });
    expect(await runFinished(t, 'after', 60_000)).to.equal('success');
    expect((await tis('after')).map((ti) => [ti.task_id, ti.try_number, ti.worker_job_id])).to.deep.equal([['heavy', 1, worker.jobId], ['light', 1, worker.jobId]]);
    const workerJob = await t.database.db.selectFrom('job').select(['pid', 'state']).where('id', '=', worker.jobId).executeTakeFirstOrThrow();
    expect(workerJob).to.deep.equal({ pid: worker.daemon.child.pid, state: 'running' });
    await eventually(async () => (await graphileJobCount(t)) === 0, 'no graphile-worker job left behind', 15_000).catch(async (error: Error) => {
      const left = await sql`SELECT key, locked_by, locked_at, attempts, last_error FROM graphile_worker._private_jobs`.execute(t.database.db);
      throw new Error(`${error.message}: ${JSON.stringify(left.rows)}`);
    });
    expect(worker.daemon.stderr() + scheduler.daemon.stderr()).not.to.match(/Unhandled|uncaught/i);
    expect(await stopped(worker.daemon)).to.equal(0);
    expect(await stopped(scheduler.daemon)).to.equal(0);
    await noProcessLeft();
  });

  it('a `tsflow worker` outlives graphile-worker failing to mark a finished job done (its connection cut, as a restart does), and clears that job', async function () {
    this.timeout(90_000);
    const worker = await startWorker(t, { hostname: 'host-cut', queues: 'default,heavy', runsFile });
    // The first completion of the job of `cut`'s light task has its connection terminated mid-statement
    // (57P01, what `pg_ctl stop -m fast` does to an active query); the sequence is not rolled back, so
    // only that first delete is cut.
    await sql`CREATE SEQUENCE public.cut_once`.execute(t.database.db);
    await sql`CREATE FUNCTION public.cut_release() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.key LIKE 'graphile_routing/cut/light#%' THEN
          IF nextval('public.cut_once') = 1 THEN
            PERFORM pg_terminate_backend(pg_backend_pid());
            PERFORM pg_sleep(5);
          END IF;
        END IF;
        RETURN OLD;
      END $$`.execute(t.database.db);
    await sql`CREATE TRIGGER cut_release BEFORE DELETE ON graphile_worker._private_jobs FOR EACH ROW EXECUTE FUNCTION public.cut_release()`.execute(t.database.db);
    const s = (await startScheduler(t.database, bag, { heartbeatIntervalMs: 500, healthCheckThresholdMs: 10_000, pollIntervalMs: 1000 }, graphileExecutor(t))).scheduler;
    const ended = runEnded(s, 'cut', 60_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'cut', conf: {}, logicalDate: new Date() });
    expect((await ended).state).to.equal('success');
    await eventually(
      async () => !isRunning(worker.daemon) || worker.daemon.stderr().includes('could not mark a finished job done') || undefined,
      'the worker to log the failed release',
      20_000,
      50,
    );
    expect(isRunning(worker.daemon), `the worker exited: ${worker.daemon.stderr().slice(-3000)}`).to.equal(true);
    expect((await sql<{ n: number }>`SELECT last_value::int AS n FROM public.cut_once`.execute(t.database.db)).rows[0]?.n, 'the release was cut').to.be.at.least(1);
    // The job it could not mark done is deleted once it is past the worker's grace period.
    await eventually(async () => (await graphileJobCount(t)) === 0, 'the job left locked to be deleted', 30_000, 100).catch((error: Error) => {
      throw new Error(`${error.message}; worker: ${worker.daemon.stderr().slice(-3000)}`);
    });
    expect(isRunning(worker.daemon), `the worker exited: ${worker.daemon.stderr().slice(-3000)}`).to.equal(true);

    const next = runEnded(s, 'next', 60_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'next', conf: {}, logicalDate: new Date() });
    expect((await next).state).to.equal('success');
    expect((await tis('next')).map((ti) => [ti.task_id, ti.try_number, ti.worker_job_id])).to.deep.equal([['heavy', 1, worker.jobId], ['light', 1, worker.jobId]]);
    expect((await runs()).sort()).to.deep.equal(['graphile_routing.heavy.1', 'graphile_routing.heavy.1', 'graphile_routing.light.1', 'graphile_routing.light.1']);
    expect(await stopped(worker.daemon)).to.equal(0);
    await noProcessLeft();
  });

  it('a `tsflow worker` started before its database waits, then takes the jobs once the server is reachable', async function () {
    this.timeout(90_000);
    const port = await freePort();
    const url = new URL(t.url);
    const target = { host: url.hostname, port: Number(url.port || 5432) };
    url.port = String(port);
    const worker = spawnWorker(t, { hostname: 'host-early', queues: 'default,heavy', runsFile, url: url.toString() });
    await eventually(async () => worker.stderr().includes('waiting for the database') || undefined, 'the worker to wait for the database', 30_000, 50);
    expect(isRunning(worker)).to.equal(true);

    // Jobs are waiting before the worker can reach the database.
    const s = (await startScheduler(t.database, bag, { heartbeatIntervalMs: 500, healthCheckThresholdMs: 10_000, pollIntervalMs: 1000 }, graphileExecutor(t))).scheduler;
    const ended = runEnded(s, 'early', 60_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'early', conf: {}, logicalDate: new Date() });
    await eventually(async () => (await graphileJobCount(t)) === 2, 'the run\'s 2 jobs', 20_000);
    expect(await t.database.db.selectFrom('job').select('id').where('job_type', '=', 'worker').execute()).to.deep.equal([]);

    proxy = await TcpProxy.listen(port, target);
    const jobId = await workerStarted(t, worker, 'host-early', 45_000);
    expect((await ended).state).to.equal('success');
    expect((await tis('early')).map((ti) => [ti.task_id, ti.try_number, ti.worker_job_id])).to.deep.equal([['heavy', 1, jobId], ['light', 1, jobId]]);
    expect(await runs()).to.have.members(['graphile_routing.heavy.1', 'graphile_routing.light.1']);
    expect(await stopped(worker)).to.equal(0);
    await noProcessLeft();
  });

  it('a pool of 3 slots never has more than 3 tasks running across two schedulers (graphile executor) and two workers', async function () {
    this.timeout(120_000);
    await setPool(t.database.db, { pool: 'three', slots: 3 });
    const [a, b] = await Promise.all([
      startWorker(t, { hostname: 'host-pool-a', queues: 'pooled', runsFile, extra: ['--concurrency', '4'] }),
      startWorker(t, { hostname: 'host-pool-b', queues: 'pooled', runsFile, extra: ['--concurrency', '4'] }),
    ]);
    const options: SchedulerOptions = { heartbeatIntervalMs: 500, healthCheckThresholdMs: 10_000, pollIntervalMs: 1000 };
    const other = t.open(5);
    const schedulers = await Promise.all([t.database, other].map(async (db) => (await startScheduler(db, bag, options, graphileExecutor(t, db))).scheduler));
    const dagIds = ['graphile_pooled_0', 'graphile_pooled_1', 'graphile_pooled_2'];
    for (const dagId of dagIds) await createDagRun(t.database.db, { dagId, runId: 'pooled', conf: {}, logicalDate: new Date() });

    // Slots taken in the database (queued and running), sampled while the 12 tasks go through.
    let maxOccupied = 0;
    let samples = 0;
    const queuedBy = new Set<number>();
    await eventually(
      async () => {
        const rows = await t.database.db.selectFrom('task_instance').select(['state', 'pool_slots', 'queued_by_job_id']).where('pool', '=', 'three').execute();
        maxOccupied = Math.max(maxOccupied, rows.filter((r) => r.state === 'queued' || r.state === 'running').reduce((n, r) => n + r.pool_slots, 0));
        samples++;
        for (const r of rows) if (r.queued_by_job_id !== null) queuedBy.add(r.queued_by_job_id);
        return rows.length === 12 && rows.every((r) => r.state === 'success');
      },
      'the 12 pooled tasks to succeed',
      90_000,
      20,
    );
    expect(samples, 'the pool was sampled often').to.be.above(20);
    expect(maxOccupied, 'slots taken at once (database)').to.equal(3);
    expect([...queuedBy].sort(), 'both schedulers queued tasks').to.deep.equal(schedulers.map((s) => s.jobId).sort());

    // Tasks really running at once, from the order of their start and end lines.
    const lines = await runs();
    let running = 0;
    let maxRunning = 0;
    for (const line of lines) {
      running += line.endsWith('.start') ? 1 : -1;
      maxRunning = Math.max(maxRunning, running);
    }
    expect(maxRunning, 'tasks running at once (task processes)').to.equal(3);
    const expected = dagIds.flatMap((d) => [0, 1, 2, 3].flatMap((i) => [`${d}.span_${i}.1.start`, `${d}.span_${i}.1.end`]));
    expect([...lines].sort()).to.deep.equal(expected.sort());
    const hosts = new Set((await tis('pooled')).map((ti) => ti.hostname));
    expect([...hosts].sort(), 'both workers ran tasks').to.deep.equal(['host-pool-a', 'host-pool-b']);
    for (const s of schedulers) await s.stop();
    expect(await stopped(a.daemon)).to.equal(0);
    expect(await stopped(b.daemon)).to.equal(0);
    await noProcessLeft();
  });
});

function graphileExecutor(t: TestDatabase, database = t.database): GraphileExecutor {
  return new GraphileExecutor({ parallelism: 100, database, logger: silentLogger() });
}

/**
 * The live processes (not zombies) whose environment holds one of `entries` (`NAME=value`): every
 * process a test started, and whatever they started in turn (children inherit the environment, and
 * keep it when their parent dies and they are re-parented).
 */
async function processesWith(entries: readonly string[]): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (!environ.split('\0').some((variable) => entries.includes(variable))) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z') found.push(Number(entry));
  }
  return found;
}
