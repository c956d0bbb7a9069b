import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import type { DagBag } from '../src/dag-bag/dag-bag.ts';
import { failFromExecutor, failStuckQueued } from '../src/db/lost-tries.ts';
import { tiKeyString, type TaskInstanceKey } from '../src/db/schema.ts';
import { taskLogPath } from '../src/runner/task-log.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { InProcessExecutor } from './support/in-process-executor.ts';
import { createRun, loadFixtureDags, localExecutor, queue, runEnded, startScheduler, startTriggerer, taskInstance } from './support/rig.ts';

describe('scheduler: multi-scheduler enqueue, retries, zombies, lost tries, wake-up latency', () => {
  let t: TestDatabase;
  let bag: DagBag;

  before(async () => {
    t = await createTestDatabase();
    bag = await loadFixtureDags();
  });
  after(() => t.drop());
  afterEach(stopAll);

  it('two schedulers on one database enqueue each of 400 task instances exactly once, and both make progress', async function () {
    this.timeout(60_000);
    const runIds = ['wide_1', 'wide_2', 'wide_3', 'wide_4'];
    // Two pools, as two scheduler processes would have.
    const schedulers = await Promise.all(
      [t.database, t.open(10)].map((db) => startScheduler(db, bag, { pollIntervalMs: 1000 }, new InProcessExecutor(db, bag, 16))),
    );
    const enqueued = new Map<string, number>();
    const perScheduler = [0, 0];
    const finished = new Set<string>();
    let allDone: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    schedulers.forEach(({ scheduler }, i) => {
      scheduler.on('ti:state', ({ key, state }) => {
        if (state !== 'queued') return;
        enqueued.set(tiKeyString(key), (enqueued.get(tiKeyString(key)) ?? 0) + 1);
        perScheduler[i] = (perScheduler[i] ?? 0) + 1;
      });
      scheduler.on('run:state', ({ runId, state }) => {
        if (state === 'running') return;
        finished.add(`${runId}:${state}`);
        if (finished.size === runIds.length) allDone();
      });
    });
    for (const runId of runIds) await createRun(t.database, bag.getDag('wide_dag'), runId);
    for (const { scheduler } of schedulers) scheduler.nudge();
    await done;

    expect([...finished].sort()).to.deep.equal(runIds.map((r) => `${r}:success`));
    expect(enqueued.size).to.equal(400);
    const twice = [...enqueued].filter(([, n]) => n !== 1);
    expect(twice, 'task instances enqueued more than once').to.deep.equal([]);
    expect(perScheduler[0], 'scheduler 1 enqueued some').to.be.greaterThan(0);
    expect(perScheduler[1], 'scheduler 2 enqueued some').to.be.greaterThan(0);
    const rows = await t.database.db.selectFrom('task_instance').select(['state', 'try_number']).where('dag_id', '=', 'wide_dag').execute();
    expect(rows).to.have.length(400);
    expect(rows.every((r) => r.state === 'success' && r.try_number === 1)).to.equal(true);
  });

  it('retries a failed task after its retryDelay, each try with its own log file holding the error and its stack', async () => {
    const logs = await mkdtemp(path.join(os.tmpdir(), 'tsflow-logs-'));
    try {
      const executor = localExecutor(t.database, { parallelism: 1, worker: { logsFolder: logs } });
      const { scheduler } = await startScheduler(t.database, bag, {}, executor);
      const states: string[] = [];
      scheduler.on('ti:state', ({ key, state }) => key.runId === 'retry' && states.push(state));
      const ended = runEnded(scheduler, 'retry');
      await createRun(t.database, bag.getDag('retry_dag'), 'retry');
      scheduler.nudge();
      expect((await ended).state).to.equal('success');
      expect(states).to.deep.equal(['scheduled', 'queued', 'running', 'up_for_retry', 'scheduled', 'queued', 'running', 'success']);

      const key = { dagId: 'retry_dag', runId: 'retry', taskId: 'flaky' };
      expect((await taskInstance(t.database, key)).try_number).to.equal(2);
      // Timed by the worker's own log lines: 'task failed' is written as the retry time is computed,
      // 'task started' once the retry runs — so IPC or scheduler load cannot shorten the gap.
      const lineTime = async (tryNumber: number, msg: string) => {
        const lines = (await readFile(taskLogPath(logs, key, tryNumber), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { msg: string; time: string });
        return Date.parse(lines.find((l) => l.msg === msg)?.time ?? 'missing');
      };
      const gap = (await lineTime(2, 'task started')) - (await lineTime(1, 'task failed'));
      expect(gap, 'retryDelay is 0.5 s: not before it').to.be.at.least(495);

      const first = await readFile(taskLogPath(logs, key, 1), 'utf8');
      expect(first).to.contain('flaky task starting').and.contain('"msg":"task failed"');
      expect(first).to.contain('Error: flaky failure on the first try\\n    at FailsOnce.execute');
      expect(first).to.contain('"state":"up_for_retry"');
      const second = await readFile(taskLogPath(logs, key, 2), 'utf8');
      expect(second).to.contain('"state":"success"').and.not.contain('flaky failure');
    } finally {
      await rm(logs, { recursive: true, force: true });
    }
  });

  it('fails or retries a running task instance whose heartbeat stopped (a zombie)', async () => {
    await createRun(t.database, bag.getDag('zombie_dag'), 'zombies');
    // Both were running on a machine that died an hour ago.
    await t.database.db
      .updateTable('task_instance')
      .set({ state: 'running', try_number: 1, hostname: 'dead-host', pid: 4242, last_heartbeat_at: sql<Date>`now() - interval '1 hour'` })
      .where('run_id', '=', 'zombies')
      .execute();
    const { scheduler } = await startScheduler(t.database, bag, { zombieThresholdMs: 1000, zombieCheckIntervalMs: 100 });
    const retried = waitForEvent(scheduler, 'ti:state', (e) => e.key.taskId === 'z_retry' && e.state === 'up_for_retry');
    const failed = waitForEvent(scheduler, 'ti:state', (e) => e.key.taskId === 'z_fail' && e.state === 'failed');
    const ended = runEnded(scheduler, 'zombies');
    expect((await retried).error).to.match(/^zombie: the worker running try 1 stopped heartbeating \(last heartbeat .*\); no heartbeat for more than 1 s$/);
    expect((await failed).tryNumber).to.equal(1);
    expect((await ended).state).to.equal('failed');
    const retry = await taskInstance(t.database, { dagId: 'zombie_dag', runId: 'zombies', taskId: 'z_retry' });
    expect(retry.state, 'the retry ran to success').to.equal('success');
    expect(retry.try_number).to.equal(2);
    const fail = await taskInstance(t.database, { dagId: 'zombie_dag', runId: 'zombies', taskId: 'z_fail' });
    expect(fail.error).to.match(/^zombie:/);
    expect(fail.hostname).to.equal(null);
  });

  it('retries a task instance left queued by a scheduler that died', async () => {
    await createRun(t.database, bag.getDag('zombie_dag'), 'stuck');
    await t.database.db
      .updateTable('task_instance')
      .set({ state: 'queued', queued_at: sql<Date>`now() - interval '1 hour'` })
      .where('run_id', '=', 'stuck')
      .execute();
    const { scheduler } = await startScheduler(t.database, bag, { queuedTimeoutMs: 1000, zombieCheckIntervalMs: 100 });
    const retried = waitForEvent(scheduler, 'ti:state', (e) => e.key.runId === 'stuck' && e.state === 'up_for_retry');
    const ended = runEnded(scheduler, 'stuck');
    const retry = await retried;
    expect(retry).to.deep.include({ tryNumber: 1 });
    expect(retry.error).to.equal('stuck in queued for more than 1 s: no executor started it (was its scheduler stopped?)');
    expect((await ended).state).to.equal('failed'); // z_fail has no retries
    const retriedTi = await taskInstance(t.database, { dagId: 'zombie_dag', runId: 'stuck', taskId: 'z_retry' });
    expect(retriedTi).to.deep.include({ state: 'success', try_number: 2 });
    const failedTi = await taskInstance(t.database, { dagId: 'zombie_dag', runId: 'stuck', taskId: 'z_fail' });
    expect(failedTi).to.deep.include({ state: 'failed', try_number: 1 });
  });

  it('leaves a task that heartbeats alone, and kills the worker of a zombie it runs itself', async () => {
    const executor = localExecutor(t.database, { parallelism: 2, worker: { heartbeatIntervalMs: 100 } });
    const exited = new Promise<string | undefined>((resolve) => executor.events.on('worker:exited', (exit) => resolve(exit.reason)));
    const { scheduler } = await startScheduler(t.database, bag, { zombieThresholdMs: 1000, zombieCheckIntervalMs: 100 }, executor);
    const events: string[] = [];
    scheduler.on('ti:state', ({ key, state }) => events.push(`${key.taskId}:${state}`));
    const slept = runEnded(scheduler, 'alive');
    const spun = runEnded(scheduler, 'blocked');
    await createRun(t.database, bag.getDag('sleep_dag'), 'alive', { sleepMs: 2500 });
    await createRun(t.database, bag.getDag('spin_dag'), 'blocked');
    scheduler.nudge();

    // 2.5 s of sleep with a 1 s threshold: only the heartbeat keeps it from being a zombie.
    expect((await slept).state).to.equal('success');
    // The worker reports its committed states over IPC; the run may finish (on the commit's NOTIFY) first.
    await eventually(async () => events.includes('sleeps:success'), "the worker's report of the success");
    expect(events.filter((e) => e.startsWith('sleeps:'))).to.deep.equal(['sleeps:scheduled', 'sleeps:queued', 'sleeps:running', 'sleeps:success']);
    // The spinning task blocks its worker's event loop, so its heartbeat stops.
    expect((await spun).state).to.equal('failed');
    const spin = await taskInstance(t.database, { dagId: 'spin_dag', runId: 'blocked', taskId: 'spins_forever' });
    expect(spin.error).to.match(/^zombie:/);
    expect(await exited).to.match(/^zombie:/);
  });

  it('enqueues a resumed deferred task woken by NOTIFY, not by its minute-long poll', async () => {
    // A minute of poll (longer than this test's timeout): only a notification can wake the scheduler
    // in time. How soon it does is measured in bench/ (resume), not asserted here.
    const { scheduler } = await startScheduler(t.database, bag, { pollIntervalMs: 60_000, zombieCheckIntervalMs: 60_000 });
    const triggerer = await startTriggerer(t.database);
    const key: TaskInstanceKey = { dagId: 'defer_dag', runId: 'latency', taskId: 'defer' };
    const fired = waitForEvent(triggerer, 'trigger:fired', ({ task }) => task?.runId === 'latency');
    let resumed = false;
    let deferred = false;
    scheduler.on('ti:state', ({ key: k, state }) => {
      if (k.runId !== 'latency') return;
      if (state === 'deferred') deferred = true;
      if (state === 'queued' && deferred) resumed = true;
    });
    const ended = runEnded(scheduler, 'latency');
    await createRun(t.database, bag.getDag('defer_dag'), 'latency', { trigger: { mode: 'fire', afterMs: 300 } });
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    await fired;
    expect(resumed, 'queued again after its deferral').to.equal(true);
    // By the database clock: the triggerer's write set scheduled_at, the scheduler's enqueue queued_at, after it.
    const ti = await taskInstance(t.database, key);
    expect((ti.queued_at as Date).getTime()).to.be.at.least((ti.scheduled_at as Date).getTime());
  });

  describe('lost tries: which rows they may touch', () => {
    const retryAt = () => new Date(Date.now() + 60_000);
    const key = (runId: string): TaskInstanceKey => ({ dagId: 'zombie_dag', runId, taskId: 'z_retry' });

    it('counts the lost try of a task instance that never started, and retries it', async () => {
      await createRun(t.database, bag.getDag('zombie_dag'), 'never_started');
      await queue(t.database, key('never_started'));
      const lost = await failFromExecutor(t.database.db, key('never_started'), {}, 'worker could not start', retryAt);
      expect(lost).to.deep.include({ state: 'up_for_retry', tryNumber: 1, reason: 'worker could not start' });
      const ti = await taskInstance(t.database, key('never_started'));
      expect(ti).to.deep.include({ state: 'up_for_retry', try_number: 1, error: 'worker could not start' });
      expect(ti.ready_at).to.be.instanceOf(Date);
    });

    it('leaves a long-queued task instance alone while its own executor still holds it', async () => {
      await createRun(t.database, bag.getDag('zombie_dag'), 'held');
      await t.database.db.updateTable('task_instance').set({ state: 'queued', queued_at: sql<Date>`now() - interval '1 hour'` }).where('run_id', '=', 'held').execute();
      const lost = await failStuckQueued(t.database.db, 1000, [key('held')], retryAt);
      expect(lost.map((l) => l.key.taskId)).to.deep.equal(['z_fail']);
      expect((await taskInstance(t.database, key('held'))).state).to.equal('queued');
    });

    it('fails only the try the executor saw running, never one started since', async () => {
      await createRun(t.database, bag.getDag('zombie_dag'), 'moved_on');
      await t.database.db.updateTable('task_instance').set({ state: 'running', try_number: 2, next_method: 'executeComplete' }).where('run_id', '=', 'moved_on').execute();
      expect(await failFromExecutor(t.database.db, key('moved_on'), { tryNumber: 1 }, 'old worker died', retryAt)).to.equal(undefined);
      // A run that never started (refused by startTry) must not fail the try that is running.
      expect(await failFromExecutor(t.database.db, key('moved_on'), {}, 'duplicate start refused', retryAt)).to.equal(undefined);
      expect((await taskInstance(t.database, key('moved_on'))).state).to.equal('running');

      const lost = await failFromExecutor(t.database.db, key('moved_on'), { tryNumber: 2 }, 'worker died', retryAt);
      expect(lost).to.deep.include({ state: 'failed', tryNumber: 2 });
      const ti = await taskInstance(t.database, key('moved_on'));
      expect(ti).to.deep.include({ state: 'failed', try_number: 2, next_method: null, ready_at: null });
    });
  });
});
