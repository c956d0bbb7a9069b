import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import { silentLogger } from '../src/common/logger.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun } from '../src/db/dag-runs.ts';
import { GraphileExecutor } from '../src/executors/graphile-executor.ts';
import type { SchedulerOptions } from '../src/scheduler/scheduler.ts';
import { tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { GRAPHILE_DAGS as DAGS, graphileJobCount, readRuns, startWorker as startGraphileWorker, taskInstancesOf } from './support/graphile-rig.ts';
import { childPids, isRunning, spawnDaemon, stopProcesses } from './support/processes.ts';
import { runEnded, startScheduler, startTriggerer } from './support/rig.ts';

const FAST: SchedulerOptions = { heartbeatIntervalMs: 300, healthCheckThresholdMs: 2000, pollIntervalMs: 1000 };

/**
 * The graphile executor end to end: an in-process scheduler publishing graphile-worker jobs, and
 * real `tsflow worker` processes (distinct TSFLOW_HOSTNAMEs, distinct queues) taking them.
 */
describe('graphile executor and tsflow worker', function () {
  this.timeout(60_000);
  let t: TestDatabase;
  let bag: DagBag;
  let runsDir: string;
  let runsFile: string;

  before(async () => {
    bag = await DagBag.load(DAGS);
  });
  beforeEach(async () => {
    t = await createTestDatabase();
    runsDir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-graphile-runs-'));
    runsFile = path.join(runsDir, 'runs');
  });
  afterEach(async () => {
    await stopProcesses();
    await stopAll();
    await t.drop();
    await rm(runsDir, { recursive: true, force: true });
  });

  const startWorker = (hostname: string, queues: string, extra: string[] = []) => startGraphileWorker(t, { hostname, queues, extra, runsFile });

  async function scheduler(options: SchedulerOptions = FAST, parallelism = 500) {
    const executor = new GraphileExecutor({ parallelism, database: t.database, logger: silentLogger() });
    return (await startScheduler(t.database, bag, options, executor)).scheduler;
  }

  const runs = () => readRuns(runsFile);
  const tis = (runId: string) => taskInstancesOf(t, runId);
  const graphileJobs = () => graphileJobCount(t);

  it('routes a heavy-queue task only to the worker listening on heavy', async () => {
    await startWorker('host-light', 'default');
    await startWorker('host-heavy', 'heavy');
    const s = await scheduler();
    const ended = runEnded(s, 'routing', 30_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'routing', conf: {}, logicalDate: new Date() });
    expect((await ended).state).to.equal('success');
    expect((await tis('routing')).map((ti) => [ti.task_id, ti.state, ti.hostname])).to.deep.equal([
      ['heavy', 'success', 'host-heavy'],
      ['light', 'success', 'host-light'],
    ]);
  });

  it('runs 500 no-op tasks over 3 workers exactly once each, and leaves no job behind', async function () {
    this.timeout(180_000);
    await Promise.all([startWorker('host-a', 'default'), startWorker('host-b', 'default,heavy'), startWorker('host-c', 'default')]);
    // Dead-worker detection is not what this test is about: 48 task processes on a loaded CI machine
    // may hold a worker's heartbeat past FAST's 2 s, and a no-op task has no retry.
    const s = await scheduler({ ...FAST, healthCheckThresholdMs: 15_000 });
    const ended = runEnded(s, 'many', 150_000);
    await createDagRun(t.database.db, { dagId: 'graphile_many', runId: 'many', conf: {}, logicalDate: new Date() });
    const state = (await ended).state;
    const rows = await tis('many');
    expect(state, JSON.stringify(rows.filter((ti) => ti.state !== 'success').slice(0, 5))).to.equal('success');
    expect(rows).to.have.length(500);
    expect(rows.filter((ti) => ti.state !== 'success' || ti.try_number !== 1)).to.deep.equal([]);
    const lines = await runs();
    expect(lines).to.have.length(500);
    expect(new Set(lines)).to.deep.equal(new Set(rows.map((ti) => `graphile_many.${ti.task_id}.1`)));
    expect(new Set(rows.map((ti) => ti.hostname)).size, 'tasks spread over the workers').to.equal(3);
    expect(await graphileJobs()).to.equal(0);
  });

  it('retries exactly once the task of a SIGKILLed worker (and its task process), leaves the other worker\'s task alone, and marks the worker failed', async () => {
    const victim = await startWorker('host-victim', 'slow', ['--concurrency', '1']);
    await startWorker('host-survivor', 'slow', ['--concurrency', '1']);
    const s = await scheduler();
    const ended = runEnded(s, 'killed', 40_000);
    await createDagRun(t.database.db, { dagId: 'graphile_slow', runId: 'killed', conf: {}, logicalDate: new Date() });
    await eventually(async () => (await tis('killed')).filter((ti) => ti.state === 'running').length === 2, 'both slow tasks to run', 20_000);
    const onVictim = (await tis('killed')).find((ti) => ti.hostname === 'host-victim');
    expect(onVictim, 'a task ran on the victim').to.not.equal(undefined);
    // The worker and its task process die together (a machine lost): nothing records the try but
    // the scheduler, once the worker's heartbeat is past the threshold.
    const lost: string[] = [];
    s.on('ti:state', ({ key, state, error }) => key.taskId === onVictim?.task_id && state === 'up_for_retry' && lost.push(error ?? ''));
    const taskProcesses = await childPids(victim.daemon.child.pid!);
    victim.daemon.child.kill('SIGKILL');
    for (const pid of taskProcesses) process.kill(pid, 'SIGKILL');
    expect((await ended).state).to.equal('success');
    expect(lost).to.have.length(1);
    expect(lost[0]).to.match(/host-victim\) stopped heartbeating .* presumed dead/);
    const rows = await tis('killed');
    for (const ti of rows) {
      if (ti.task_id === onVictim?.task_id) expect([ti.state, ti.try_number, ti.hostname]).to.deep.equal(['success', 2, 'host-survivor']);
      else expect([ti.state, ti.try_number]).to.deep.equal(['success', 1]);
    }
    expect((await runs()).sort()).to.deep.equal([`graphile_slow.${onVictim?.task_id}.1`, `graphile_slow.${onVictim?.task_id}.2`, ...rows.filter((r) => r.task_id !== onVictim?.task_id).map((r) => `graphile_slow.${r.task_id}.1`)].sort());
    await eventually(
      async () => (await t.database.db.selectFrom('job').select('state').where('id', '=', victim.jobId).executeTakeFirstOrThrow()).state === 'failed',
      'the scheduler to mark the dead worker failed',
      10_000,
    );
    await eventually(async () => (await graphileJobs()) === 0, 'the dead worker\'s job to be released', 15_000).catch(async (error: Error) => {
      const left = await sql`SELECT key, locked_by, attempts, max_attempts, last_error FROM graphile_worker._private_jobs`.execute(t.database.db);
      throw new Error(`${error.message}: ${JSON.stringify(left.rows)}; workers ${JSON.stringify(await t.database.db.selectFrom('job').select(['id', 'state', 'graphile_worker_ids']).execute())}`);
    });
  });

  it('drains on SIGTERM: the running task finishes, then the worker exits 0', async () => {
    const worker = await startWorker('host-drain', 'drain');
    await scheduler();
    await createDagRun(t.database.db, { dagId: 'graphile_drain', runId: 'drain', conf: {}, logicalDate: new Date() });
    await eventually(async () => (await tis('drain'))[0]?.state === 'running', 'the task to run', 20_000);
    worker.daemon.child.kill('SIGTERM');
    expect(await worker.daemon.exited).to.equal(0);
    expect((await tis('drain')).map((ti) => [ti.state, ti.try_number]), JSON.stringify(await tis('drain')) + worker.daemon.stderr()).to.deep.equal([['success', 1]]);
    expect((await t.database.db.selectFrom('job').select('state').where('id', '=', worker.jobId).executeTakeFirstOrThrow()).state).to.equal('success');
  });

  it('stops a task still running at --shutdown-timeout and hands it back for a retry', async () => {
    const worker = await startWorker('host-impatient', 'drain', ['--shutdown-timeout', '0.5']);
    await scheduler();
    await createDagRun(t.database.db, { dagId: 'graphile_drain', runId: 'cut', conf: {}, logicalDate: new Date() });
    await eventually(async () => (await tis('cut'))[0]?.state === 'running', 'the task to run', 20_000);
    worker.daemon.child.kill('SIGTERM');
    expect(await worker.daemon.exited).to.equal(0);
    const [ti] = await tis('cut');
    expect([ti?.state, ti?.try_number]).to.deep.equal(['up_for_retry', 1]);
    expect(ti?.error).to.be.a('string').and.not.equal('');
  });

  it('exits at once on a second SIGTERM, its task process recording the try', async () => {
    const worker = await startWorker('host-hasty', 'drain');
    await scheduler();
    await createDagRun(t.database.db, { dagId: 'graphile_drain', runId: 'twice', conf: {}, logicalDate: new Date() });
    await eventually(async () => (await tis('twice'))[0]?.state === 'running', 'the task to run', 20_000);
    worker.daemon.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const signalled = Date.now();
    worker.daemon.child.kill('SIGTERM');
    expect(await worker.daemon.exited).to.equal(143);
    expect(Date.now() - signalled).to.be.below(2000);
    await eventually(async () => (await tis('twice'))[0]?.state === 'up_for_retry', 'the orphaned task process to record its try', 10_000);
  });

  it('worker and scheduler survive pg_terminate_backend of every connection', async () => {
    const worker = await startWorker('host-terminated', 'default,heavy');
    const s = await scheduler();
    const first = runEnded(s, 'before', 30_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'before', conf: {}, logicalDate: new Date() });
    expect((await first).state).to.equal('success');
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`.execute(t.database.db);
    const second = runEnded(s, 'after', 30_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'after', conf: {}, logicalDate: new Date() });
    expect((await second).state).to.equal('success');
    expect(isRunning(worker.daemon)).to.equal(true);
    expect((await tis('after')).map((ti) => [ti.task_id, ti.try_number, ti.hostname])).to.deep.equal([['heavy', 1, 'host-terminated'], ['light', 1, 'host-terminated']]);
  });

  it('drops a stale job without running anything', async () => {
    await startWorker('host-stale', 'default');
    const s = await scheduler();
    const ended = runEnded(s, 'stale', 30_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'stale', conf: {}, logicalDate: new Date() });
    await startWorker('host-stale-heavy', 'heavy');
    await ended;
    const before = await runs();
    // A job for try 1 of a task instance that already succeeded (as if published twice).
    await sql`SELECT graphile_worker.add_job('tsflow_task:default', ${JSON.stringify({ dagId: 'graphile_routing', runId: 'stale', taskId: 'light', tryNumber: 1 })}::json, max_attempts => 1)`.execute(t.database.db);
    await eventually(async () => (await graphileJobs()) === 0, 'the worker to take the stale job', 15_000);
    expect(await runs()).to.deep.equal(before);
    expect((await tis('stale')).map((ti) => [ti.task_id, ti.state, ti.try_number])).to.deep.equal([['heavy', 'success', 1], ['light', 'success', 1]]);
  });

  it('a restarted scheduler adopts the 100 queued task instances of the dead one: none gets a second job or runs twice', async function () {
    this.timeout(120_000);
    const first = await scheduler();
    await createDagRun(t.database.db, { dagId: 'graphile_adopt', runId: 'adopt', conf: {}, logicalDate: new Date() });
    await eventually(async () => (await tis('adopt')).filter((ti) => ti.state === 'queued').length === 100, 'all 100 to be queued', 30_000);
    expect(await graphileJobs()).to.equal(100);
    await first.stop();
    const second = await scheduler();
    const rescheduled: string[] = [];
    second.on('ti:state', ({ key, state }) => state === 'scheduled' && rescheduled.push(key.taskId));
    await eventually(
      async () => (await t.database.db.selectFrom('task_instance').select('task_id').where('run_id', '=', 'adopt').where('queued_by_job_id', '=', second.jobId!).execute()).length === 100,
      'the new scheduler to adopt all 100',
      20_000,
    );
    expect(await graphileJobs()).to.equal(100);
    const ended = runEnded(second, 'adopt', 90_000);
    await startWorker('host-adopt', 'adopt', ['--concurrency', '8']);
    expect((await ended).state).to.equal('success');
    expect(rescheduled).to.deep.equal([]);
    const lines = await runs();
    expect(lines).to.have.length(100);
    expect(new Set(lines).size).to.equal(100);
    expect((await tis('adopt')).filter((ti) => ti.state !== 'success' || ti.try_number !== 1)).to.deep.equal([]);
  });

  it('resumes a deferred task through a remote worker', async () => {
    await startWorker('host-remote', 'remote');
    const s = await scheduler();
    await startTriggerer(t.database);
    const ended = runEnded(s, 'defer', 30_000);
    await createDagRun(t.database.db, { dagId: 'graphile_defer', runId: 'defer', conf: {}, logicalDate: new Date() });
    expect((await ended).state).to.equal('success');
    expect((await tis('defer')).map((ti) => [ti.state, ti.try_number, ti.hostname])).to.deep.equal([['success', 1, 'host-remote']]);
    expect(await runs()).to.deep.equal(['graphile_defer.wait.1.execute', 'graphile_defer.wait.1.complete']);
  });

  it('tsflow scheduler --executor graphile (TSFLOW_EXECUTOR) hands tasks to a tsflow worker', async () => {
    await startWorker('host-cli', 'default,heavy');
    spawnDaemon(['scheduler', '--heartbeat-interval', '0.3', '--health-check-threshold', '2', '--dags-folder', DAGS], {
      TSFLOW_DATABASE_URL: t.url,
      TSFLOW_EXECUTOR: 'graphile',
    });
    await eventually(async () => (await t.database.db.selectFrom('dag').select('dag_id').where('dag_id', '=', 'graphile_routing').executeTakeFirst()) ?? false, 'the DAGs to be parsed', 30_000);
    await createDagRun(t.database.db, { dagId: 'graphile_routing', runId: 'cli', conf: {}, logicalDate: new Date() });
    await eventually(
      async () => (await t.database.db.selectFrom('dag_run').select('state').where('run_id', '=', 'cli').executeTakeFirstOrThrow()).state === 'success',
      'the run to succeed',
      30_000,
    );
    expect((await tis('cli')).map((ti) => [ti.task_id, ti.try_number, ti.hostname])).to.deep.equal([['heavy', 1, 'host-cli'], ['light', 1, 'host-cli']]);
    const states = await tsflow(['tasks', 'states', 'graphile_routing', 'cli', '--json'], { TSFLOW_DATABASE_URL: t.url });
    expect((JSON.parse(states.stdout) as { hostname: string }[]).map((s) => s.hostname)).to.deep.equal(['host-cli', 'host-cli']);
  });

  it('workers list --json shows each worker; jobs check --job-type worker probes them', async () => {
    const env = { TSFLOW_DATABASE_URL: t.url };
    expect((await tsflow(['jobs', 'check', '--job-type', 'worker'], env)).code).to.equal(1);
    const worker = await startWorker('host-listed', 'default,heavy', ['--concurrency', '3']);
    expect(isRunning(worker.daemon)).to.equal(true);
    const listed = await tsflow(['workers', 'list', '--json'], env);
    expect(listed.code).to.equal(0);
    const [row] = JSON.parse(listed.stdout) as Record<string, unknown>[];
    expect(row).to.include({ hostname: 'host-listed', concurrency: 3, runningTasks: 0, alive: true, state: 'running' });
    expect(row?.['queues']).to.deep.equal(['default', 'heavy']);
    expect((await tsflow(['jobs', 'check', '--job-type', 'worker'], env)).code).to.equal(0);
  });

  it('the graphile executor and tsflow worker refuse a database without graphile-worker\'s schema', async () => {
    await sql`DROP SCHEMA graphile_worker CASCADE`.execute(t.database.db);
    const executor = new GraphileExecutor({ database: t.database, logger: silentLogger() });
    let refused: unknown;
    await executor.start().catch((error: unknown) => (refused = error));
    expect(String(refused)).to.match(/has no graphile_worker schema .*tsflow db migrate/);
    const worker = await tsflow(['worker', '--dags-folder', DAGS], { TSFLOW_DATABASE_URL: t.url });
    expect(worker.code).to.equal(1);
    expect(worker.stderr).to.match(/has no graphile_worker schema/);
    const status = await tsflow(['db', 'status'], { TSFLOW_DATABASE_URL: t.url, TSFLOW_EXECUTOR: 'graphile' });
    expect([status.code, status.stdout]).to.satisfy(([code, out]: [number, string]) => code === 1 && out.includes('graphile-worker schema (graphile_worker): missing'));
  });
});
