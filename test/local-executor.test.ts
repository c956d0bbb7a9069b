import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { sql } from 'kysely';
import type { DagBag } from '../src/dag-bag/dag-bag.ts';
import type { TaskInstanceState } from '../src/db/schema.ts';
import type { LocalExecutor } from '../src/executors/local-executor.ts';
import type { WorkerExit } from '../src/executors/worker-process.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { BIN } from './support/cli.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { createRun, FIXTURE_DAGS, loadFixtureDags, localExecutor, runEnded, startScheduler, startTriggerer, taskInstance } from './support/rig.ts';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface WorkerWatch {
  started: number[];
  exited: WorkerExit[];
  /** Resolves once `count` workers have exited (the task's state and its worker's exit are not ordered). */
  exits(count: number, timeoutMs?: number): Promise<WorkerExit[]>;
}

/** Collects the executor's worker lifecycle, from the moment it is created. */
function watchWorkers(executor: LocalExecutor): WorkerWatch {
  const started: number[] = [];
  const exited: WorkerExit[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  executor.events.on('worker:started', ({ pid }) => started.push(pid));
  executor.events.on('worker:exited', (exit) => {
    exited.push(exit);
    for (const waiter of waiters) if (exited.length >= waiter.count) waiter.resolve();
  });
  const exits = (count: number, timeoutMs = 10_000): Promise<WorkerExit[]> =>
    new Promise((resolve, reject) => {
      if (exited.length >= count) return resolve(exited);
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${count} worker exits (saw ${exited.length})`)), timeoutMs);
      waiters.push({ count, resolve: () => (clearTimeout(timer), resolve(exited)) });
    });
  return { started, exited, exits };
}

describe('LocalExecutor: worker processes on a real PostgreSQL', () => {
  let t: TestDatabase;
  let bag: DagBag;

  before(async () => {
    t = await createTestDatabase();
    bag = await loadFixtureDags();
  });
  after(() => t.drop());
  afterEach(stopAll);

  it('runs a deferred task and its resume on the same worker process, reporting every state', async () => {
    const executor = localExecutor(t.database, { parallelism: 1 });
    const workers = watchWorkers(executor);
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    await startTriggerer(t.database);
    const states: TaskInstanceState[] = [];
    scheduler.on('ti:state', ({ key, state }) => key.runId === 'resume' && states.push(state));
    const ended = runEnded(scheduler, 'resume');
    await createRun(t.database, bag.getDag('defer_dag'), 'resume', { trigger: { mode: 'fire', afterMs: 50, payload: { ok: true } } });
    scheduler.nudge();
    expect((await ended).state).to.equal('success');

    expect(states).to.deep.equal(['scheduled', 'queued', 'running', 'deferred', 'queued', 'running', 'success']);
    expect(workers.started, 'one worker process served the first run and the resume').to.have.length(1);
    expect(workers.exited).to.deep.equal([]);
    const xcom = await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', 'resume').executeTakeFirstOrThrow();
    expect(xcom.value).to.deep.include({ event: { ok: true }, tryAtResume: 1 });
  });

  it('runs task instances in parallel on at most `parallelism` reused workers', async () => {
    const executor = localExecutor(t.database, { parallelism: 3 });
    const workers = watchWorkers(executor);
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    let peak = 0;
    scheduler.on('ti:state', () => (peak = Math.max(peak, executor.runningCount)));
    const ended = runEnded(scheduler, 'wide', 60_000);
    await createRun(t.database, bag.getDag('wide_dag'), 'wide');
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    expect(workers.started.length).to.be.within(1, 3);
    expect(peak).to.be.within(1, 3);
    const tries = await t.database.db.selectFrom('task_instance').select('try_number').where('run_id', '=', 'wide').execute();
    expect(tries).to.have.length(100);
    expect(new Set(tries.map((r) => r.try_number))).to.deep.equal(new Set([1]));
  });

  it('keeps a connection open while a worker process waits for its next task, past the pool\'s 10 s idle timeout', async function () {
    // Without it, the first task after a quiet spell waits for a new backend before its running write.
    this.timeout(60_000);
    const executor = localExecutor(t.database, { parallelism: 1 });
    const workers = watchWorkers(executor);
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const ended = runEnded(scheduler, 'quiet');
    await createRun(t.database, bag.getDag('ok_dag'), 'quiet');
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tsflow-worker'`.execute(t.database.db);
    expect(workers.started, 'the warm worker process').to.have.length(1);
    expect(workers.exited).to.deep.equal([]);
    expect(rows[0]?.n, 'connections of the idle worker process').to.equal(1);
  });

  it('does not lose the task of a worker process that is killed: the try is retried on a new worker', async () => {
    const executor = localExecutor(t.database, { parallelism: 2 });
    const workers = watchWorkers(executor);
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const key = { dagId: 'crash_dag', runId: 'crash', taskId: 'victim' };
    const running = waitForEvent(scheduler, 'ti:state', (e) => e.key.runId === 'crash' && e.state === 'running');
    const retried = waitForEvent(scheduler, 'ti:state', (e) => e.key.runId === 'crash' && e.state === 'up_for_retry');
    const ended = runEnded(scheduler, 'crash');
    await createRun(t.database, bag.getDag('crash_dag'), 'crash');
    scheduler.nudge();
    await running;
    const { pid } = await taskInstance(t.database, key);
    expect(pid, 'the worker process holding the task').to.be.a('number').and.not.equal(process.pid);
    process.kill(pid as number, 'SIGKILL');

    const retry = await retried;
    expect(retry.tryNumber).to.equal(1);
    expect(retry.error).to.match(/worker process \d+ was killed by SIGKILL while running crash_dag\/crash\/victim/);
    expect((await ended).state).to.equal('success');
    const ti = await taskInstance(t.database, key);
    expect(ti.try_number).to.equal(2);
    expect((await workers.exits(1)).map((e) => e.pid)).to.include(pid);
    expect(workers.started).to.have.length(2);
    expect(workers.started[1]).to.not.equal(pid);
  });

  it('fails a task past its executionTimeout and kills its worker, whether the task hangs or blocks the event loop', async () => {
    const executor = localExecutor(t.database, { parallelism: 2, timeoutGraceMs: 300 });
    const workers = watchWorkers(executor);
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const ended = runEnded(scheduler, 'timeouts');
    await createRun(t.database, bag.getDag('timeout_dag'), 'timeouts');
    scheduler.nudge();
    expect((await ended).state).to.equal('failed');

    const hangs = await taskInstance(t.database, { dagId: 'timeout_dag', runId: 'timeouts', taskId: 'hangs' });
    expect(hangs.state).to.equal('failed');
    // The worker recorded the timeout itself, then was retired because the task ignored its signal.
    expect(hangs.error).to.contain('TaskExecutionTimeout: task exceeded its executionTimeout');
    const spins = await taskInstance(t.database, { dagId: 'timeout_dag', runId: 'timeouts', taskId: 'spins' });
    expect(spins.state).to.equal('failed');
    // The spinning worker could not fire its own timer: the executor killed it.
    expect(spins.error).to.match(/was killed by SIGKILL \(the task passed its executionTimeout/);

    const exits = await workers.exits(2);
    expect(exits).to.have.length(2);
    for (const exit of exits) {
      expect(exit.signal).to.equal('SIGKILL');
      expect(isAlive(exit.pid), `worker ${exit.pid} is gone`).to.equal(false);
    }
  });

  it('ends its workers when it ends, and a terminated executor records its running task as failed', async () => {
    const executor = localExecutor(t.database, { parallelism: 1, shutdownTimeoutMs: 5000 });
    const workers = watchWorkers(executor);
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const running = waitForEvent(scheduler, 'ti:state', (e) => e.key.runId === 'terminate' && e.state === 'running');
    await createRun(t.database, bag.getDag('sleep_dag'), 'terminate', { sleepMs: 60_000 });
    scheduler.nudge();
    await running;
    const [pid] = workers.started as [number];
    await executor.terminate();
    expect(isAlive(pid)).to.equal(false);
    expect(workers.exited).to.have.length(1);
    expect(workers.exited[0]?.signal, 'it stopped on SIGTERM, in time, not SIGKILL').to.not.equal('SIGKILL');
    const ti = await taskInstance(t.database, { dagId: 'sleep_dag', runId: 'terminate', taskId: 'sleeps' });
    expect(ti.state).to.equal('failed');
    expect(ti.error).to.contain('the worker was stopped: SIGTERM');
    await scheduler.stop();
    expect(executor.workerPids).to.deep.equal([]);
  });

  it('leaves no orphan: when the scheduler process dies, its worker stops the task, records the try and exits', async function () {
    this.timeout(60_000);
    const key = { dagId: 'crash_dag', runId: 'orphan', taskId: 'victim' };
    await createRun(t.database, bag.getDag('crash_dag'), 'orphan');
    const scheduler = spawn(process.execPath, [BIN, 'scheduler', '--executor', 'local', '--parallelism', '1'], {
      env: { ...process.env, TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: FIXTURE_DAGS, TSFLOW_HOME: process.env['TSFLOW_TEST_HOME'], TSFLOW_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const schedulerExited = new Promise((resolve) => scheduler.once('exit', resolve));
    try {
      const workerPid = await eventually(async () => {
        const ti = await taskInstance(t.database, key);
        return ti.state === 'running' && ti.pid !== null ? ti.pid : undefined;
      }, 'the task to run in a worker process', 30_000);
      expect(workerPid).to.not.equal(scheduler.pid);
      scheduler.kill('SIGKILL'); // no chance to stop its workers
      await schedulerExited;

      const ti = await eventually(async () => {
        const row = await taskInstance(t.database, key);
        return row.state === 'up_for_retry' ? row : undefined;
      }, 'the orphaned worker to record its try', 20_000);
      expect(ti.error).to.contain('the worker was stopped: the executor that started this worker is gone');
      await eventually(async () => !isAlive(workerPid), `worker ${workerPid} to exit`, 10_000);
    } finally {
      if (scheduler.exitCode === null && scheduler.signalCode === null) scheduler.kill('SIGKILL');
    }
  });
});
