import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import { clearTaskInstances } from '../src/db/clear.ts';
import { submitTriggerOutcomes } from '../src/db/triggers.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { insertDeferred, statesOf } from './support/deferred.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { startNotifier, startTriggerer, taskInstance } from './support/rig.ts';

const hang = () => ({ mode: 'hang' });

describe('the triggerer daemon', () => {
  let t: TestDatabase;
  let scratch: string;

  beforeEach(async () => {
    t = await createTestDatabase();
    scratch = await mkdtemp(path.join(os.tmpdir(), 'tsflow-triggerer-'));
  });
  afterEach(async () => {
    await stopAll();
    await t.drop();
    await rm(scratch, { recursive: true, force: true });
  });

  const owners = async () => {
    const rows = await t.database.db.selectFrom('trigger').select(['id', 'triggerer_id']).orderBy('id').execute();
    return rows;
  };

  it('never owns more than its capacity, claims oldest first, and two never overlap', async () => {
    const set = await insertDeferred(t.database, 12, hang);
    const a = await startTriggerer(t.database, { capacity: 5 });
    await eventually(async () => a.activeTriggerIds.length === 5, 'a to fill its capacity');
    expect(a.activeTriggerIds.sort((x, y) => x - y)).to.deep.equal(set.triggerIds.slice(0, 5));
    const b = await startTriggerer(t.database, { capacity: 5 });
    await eventually(async () => b.activeTriggerIds.length === 5, 'b to fill its capacity');
    const rows = await owners();
    expect(rows.filter((r) => r.triggerer_id === a.jobId)).to.have.length(5);
    expect(rows.filter((r) => r.triggerer_id === b.jobId)).to.have.length(5);
    expect(rows.filter((r) => r.triggerer_id === null).map((r) => r.id)).to.deep.equal(set.triggerIds.slice(10));
    expect(new Set([...a.activeTriggerIds, ...b.activeTriggerIds]).size).to.equal(10);
  });

  it("takes a dead triggerer's triggers after the threshold, and never a live one's", async () => {
    const set = await insertDeferred(t.database, 4, hang);
    const a = await startTriggerer(t.database, { heartbeatIntervalMs: 200, healthCheckThresholdMs: 1500 });
    await eventually(async () => a.activeTriggerIds.length === 4, 'a to claim all');
    const b = await startTriggerer(t.database, { heartbeatIntervalMs: 200, healthCheckThresholdMs: 1500 });
    // Every run b starts must end one way or another, or still be running: none orphaned.
    let bStarted = 0;
    let bEnded = 0;
    b.on('trigger:started', () => bStarted++);
    for (const event of ['trigger:cancelled', 'trigger:fired', 'trigger:failed'] as const) b.on(event, () => bEnded++);
    // b looks several times while a is alive: it must take nothing.
    for (let i = 0; i < 4; i++) {
      b.nudge();
      await waitForEvent(b, 'pass');
    }
    expect((await owners()).every((r) => r.triggerer_id === a.jobId)).to.equal(true);
    // a's process goes away without releasing (a crash): its rows stay with its job.
    await a.stop(); // stop() releases its rows; give them back to a's job to stage a crash instead
    await sql`UPDATE trigger SET triggerer_id = ${a.jobId} WHERE id = ANY(${set.triggerIds}::bigint[])`.execute(t.database.db);
    // While a's last heartbeat is fresher than the threshold, a counts as alive: b takes nothing.
    await sql`UPDATE job SET state = 'running', latest_heartbeat = now() WHERE id = ${a.jobId}`.execute(t.database.db);
    b.nudge();
    await waitForEvent(b, 'pass');
    expect((await owners()).every((r) => r.triggerer_id === a.jobId), 'a fresh heartbeat: not taken').to.equal(true);
    // Once it is older than the threshold, b takes them on its next pass.
    await sql`UPDATE job SET latest_heartbeat = now() - interval '2 seconds' WHERE id = ${a.jobId}`.execute(t.database.db);
    b.nudge();
    await eventually(async () => (await owners()).every((r) => r.triggerer_id === b.jobId), "b to take the dead triggerer's triggers", 10_000);
    await eventually(async () => b.activeTriggerIds.length === 4, 'b to run them');
    await eventually(async () => bStarted - bEnded === 4, 'no run of b left orphaned (each started run ended or is one of the 4)');
  });

  it("rejects a stale owner's event and absorbs a duplicate one", async () => {
    const set = await insertDeferred(t.database, 1, hang, { notify: false });
    const [triggerId] = set.triggerIds as [number];
    await sql`UPDATE trigger SET triggerer_id = 1001 WHERE id = ${triggerId}`.execute(t.database.db);
    const stale = await submitTriggerOutcomes(t.database.db, 1000, [{ triggerId, kind: 'event', payload: { from: 'stale' } }]);
    expect(stale.applied.size).to.equal(0);
    expect(stale.resumed).to.equal(0);
    expect(await statesOf(t.database, set)).to.deep.equal(['deferred']);

    const first = await submitTriggerOutcomes(t.database.db, 1001, [{ triggerId, kind: 'event', payload: { from: 'owner' } }]);
    expect([...first.applied]).to.deep.equal([triggerId]);
    expect(first.resumed).to.equal(1);
    const duplicate = await submitTriggerOutcomes(t.database.db, 1001, [{ triggerId, kind: 'event', payload: { from: 'again' } }]);
    expect(duplicate.resumed, 'a duplicate event resumes nothing').to.equal(0);
    const ti = await taskInstance(t.database, set.keys[0]!);
    expect(ti.state).to.equal('scheduled');
    expect(ti.next_kwargs).to.deep.equal({ i: 0, event: { from: 'owner' } });
  });

  it('times out a deferred task at its deadline, never before, with no triggerer running', async () => {
    const { TimeoutSweeper } = await import('../src/daemon/timeout-sweeper.ts');
    const { silentLogger } = await import('../src/common/logger.ts');
    const sweeper = new TimeoutSweeper({ db: t.database.db, logger: silentLogger() });
    sweeper.start();
    try {
      const set = await insertDeferred(t.database, 3, hang, { timeoutMs: 700 });
      sweeper.nudge();
      await eventually(async () => (await statesOf(t.database, set)).every((s) => s === 'scheduled'), 'the timeouts', 5000);
      const { rows } = await sql<{ next_method: string; next_kwargs: Record<string, unknown>; late_ms: number }>`
        SELECT next_method, next_kwargs, extract(epoch FROM scheduled_at - trigger_timeout) * 1000 AS late_ms
        FROM task_instance WHERE run_id = ${set.keys[0]!.runId}`.execute(t.database.db);
      expect(rows).to.have.length(3);
      for (const row of rows) {
        expect(row.next_method).to.equal('__fail__');
        expect(row.next_kwargs).to.deep.include({ timeout: true });
        expect(String(row.next_kwargs['error'])).to.match(/^Trigger timeout/);
        expect(Number(row.late_ms), 'not failed before its deadline').to.be.at.least(0);
      }
      expect(await t.database.db.selectFrom('trigger').selectAll().execute(), 'their triggers are deleted').to.deep.equal([]);
    } finally {
      await sweeper.stop();
    }
  });

  it('cancels the running trigger of a task whose deferral timed out', async () => {
    const triggerer = await startTriggerer(t.database, { pollIntervalMs: 60_000 });
    const set = await insertDeferred(t.database, 1, hang, { timeoutMs: 300 });
    await eventually(async () => triggerer.activeTriggerIds.length === 1, 'the trigger to start');
    const cancelled = await waitForEvent(triggerer, 'trigger:cancelled', (e) => e.triggerId === set.triggerIds[0], 5000);
    expect(cancelled.reason).to.contain('no longer ours');
    const ti = await taskInstance(t.database, set.keys[0]!);
    expect(ti.state).to.equal('scheduled');
    expect(ti.next_method).to.equal('__fail__');
  });

  it('cancels the trigger of a cleared task and runs its cleanup()', async () => {
    const marker = path.join(scratch, 'cleaned');
    const set = await insertDeferred(t.database, 1, () => ({ mode: 'hang', cleanupFile: marker }));
    const triggerer = await startTriggerer(t.database, { pollIntervalMs: 60_000 });
    await eventually(async () => triggerer.activeTriggerIds.length === 1, 'the trigger to start');
    const cancelled = waitForEvent(triggerer, 'trigger:cancelled', (e) => e.triggerId === set.triggerIds[0], 5000);
    await clearTaskInstances(t.database.db, { dagId: 'load_dag', runId: set.keys[0]!.runId, taskIds: [], retries: new Map() });
    await cancelled;
    expect(existsSync(marker), 'cleanup() ran').to.equal(true);
    expect(await t.database.db.selectFrom('trigger').selectAll().execute()).to.deep.equal([]);
    expect((await taskInstance(t.database, set.keys[0]!)).state).to.equal(null);
  });

  it('catches up after the server kills its LISTEN connection, finding triggers inserted meanwhile', async () => {
    const notifier = await startNotifier(t.database);
    const reconnected = waitForEvent(notifier, 'reconnected', () => true, 15_000);
    const triggerer = await startTriggerer(t.database, { notifier, pollIntervalMs: 120_000 });
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsflow-listen' AND datname = current_database()`.execute(t.database.db);
    // Inserted with no NOTIFY at all: only the catch-up after the reconnect can find them (the poll is 2 minutes away).
    const set = await insertDeferred(t.database, 3, () => ({ mode: 'fire', afterMs: 0 }), { notify: false });
    await reconnected;
    await eventually(async () => (await statesOf(t.database, set)).every((s) => s === 'scheduled'), 'the catch-up to run them', 10_000);
    expect(triggerer.state).to.equal('running');
  });

  it('reports a trigger that blocks the event loop, and the others still fire', async () => {
    const triggerer = await startTriggerer(t.database, { blockedThresholdMs: 100 });
    const blocked = waitForEvent(triggerer, 'loop:blocked', () => true, 10_000);
    const blocker = await insertDeferred(t.database, 1, () => ({ mode: 'block', blockMs: 400 }));
    const others = await insertDeferred(t.database, 5, () => ({ mode: 'fire', afterMs: 30 }));
    const report = await blocked;
    expect(report.blockedMs).to.be.greaterThan(100);
    expect(report.triggerIds).to.include(blocker.triggerIds[0]);
    await eventually(async () => (await statesOf(t.database, others)).every((s) => s === 'scheduled'), 'the other triggers');
    await eventually(async () => (await statesOf(t.database, blocker)).every((s) => s === 'scheduled'), 'the blocking trigger to fire too');
    expect(triggerer.metrics.render()).to.match(/tsflow_triggerer_blocked_loop_total [1-9]/);
  });

  it('fails only the task whose trigger cannot load, throws or ends without an event', async () => {
    const triggerer = await startTriggerer(t.database);
    const unknown = await insertDeferred(t.database, 1, () => ({}), { classpath: '../../../etc/passwd' });
    const badKwargs = await insertDeferred(t.database, 1, () => ({ mode: 42 }));
    const noEvent = await insertDeferred(t.database, 1, () => ({ mode: 'no-event' }));
    const fine = await insertDeferred(t.database, 1, () => ({ mode: 'fire', afterMs: 10 }));
    const all = [unknown, badKwargs, noEvent, fine];
    await eventually(async () => (await Promise.all(all.map((s) => statesOf(t.database, s)))).flat().every((s) => s === 'scheduled'), 'all four');
    const errorOf = async (set: typeof fine) => String((await taskInstance(t.database, set.keys[0]!)).next_kwargs?.['error']);
    expect(await errorOf(unknown)).to.contain("trigger class '../../../etc/passwd' is not a built-in");
    expect(await errorOf(badKwargs)).to.contain('ControlledTrigger mode must be a string');
    expect(await errorOf(noEvent)).to.contain('ended without an event');
    expect((await taskInstance(t.database, fine.keys[0]!)).next_method).to.equal('executeComplete');
    expect(triggerer.state).to.equal('running');
  });

  it('stays correct with NOTIFY switched off, on its poll alone', async () => {
    await startTriggerer(t.database, { notifier: null, pollIntervalMs: 200 });
    const set = await insertDeferred(t.database, 5, () => ({ mode: 'fire', afterMs: 10 }));
    await eventually(async () => (await statesOf(t.database, set)).every((s) => s === 'scheduled'), 'the poll to find and fire them', 10_000);
  });

  it('writes a burst of simultaneous events in a few set-based statements', async () => {
    const triggerer = await startTriggerer(t.database, { capacity: 1000 });
    const set = await insertDeferred(t.database, 300, () => ({ mode: 'fire', afterMs: 500 }));
    await eventually(async () => (await statesOf(t.database, set)).every((s) => s === 'scheduled'), 'all 300', 20_000);
    // The commit is visible to this query a moment before the triggerer has counted its batch.
    const applied = () => Number(/tsflow_triggerer_outcomes_applied_total (\d+)/.exec(triggerer.metrics.render())?.[1]);
    await eventually(async () => applied() === 300, 'the triggerer to count all 300 as applied');
    const batches = Number(/tsflow_triggerer_write_batches_total (\d+)/.exec(triggerer.metrics.render())?.[1]);
    expect(batches, 'statements for 300 events').to.be.within(1, 30);
  });
});
