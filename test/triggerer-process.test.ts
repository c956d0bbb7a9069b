import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { expect } from 'chai';
import { sql } from 'kysely';
import { BIN, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { insertDeferred, installResumeAudit, statesOf } from './support/deferred.ts';
import { eventually } from './support/events.ts';
import { FIXTURE_TRIGGERS, startTriggerer } from './support/rig.ts';

/** `tsflow triggerer` as a real child process on the test database. */
function spawnTriggerer(url: string, args: string[] = [], logLevel = 'warn'): ChildProcess {
  return spawn(process.execPath, [BIN, 'triggerer', '--triggers-folder', FIXTURE_TRIGGERS, ...args], {
    env: { ...process.env, TSFLOW_DATABASE_URL: url, TSFLOW_LOG_LEVEL: logLevel },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

/** Resolves once the child has written `text` to stderr; rejects after `timeoutMs`. */
function logged(child: ChildProcess, text: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => {
      child.stderr?.off('data', onData);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for the child to log '${text}'`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      if (!seen.includes(text)) return;
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      resolve();
    };
    child.stderr?.on('data', onData);
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('tsflow triggerer as a process', function () {
  this.timeout(60_000);
  let t: TestDatabase;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited(child);
      }
    }
    await stopAll();
    await t.drop();
  });

  const jobOf = (child: ChildProcess) =>
    eventually(
      async () => (await t.database.db.selectFrom('job').selectAll().where('pid', '=', child.pid!).where('state', '=', 'running').executeTakeFirst()) ?? false,
      'the child triggerer to register',
      20_000,
    );
  const ownedBy = async (jobId: number) =>
    Number((await t.database.db.selectFrom('trigger').select(({ fn }) => fn.countAll().as('n')).where('triggerer_id', '=', jobId).executeTakeFirstOrThrow()).n);

  it('on SIGTERM releases its triggers, and a peer runs them at once, long before its health threshold', async () => {
    const set = await insertDeferred(t.database, 20, () => ({ mode: 'hang' }));
    const child = spawnTriggerer(t.url);
    children.push(child);
    const job = await jobOf(child);
    await eventually(async () => (await ownedBy(job.id)) === 20, 'the child to claim all 20');
    // The peer's health threshold and poll are a minute: within the deadline below, only the
    // release (and its NOTIFY) can move the triggers. How fast it is belongs to bench/ (failover).
    const peer = await startTriggerer(t.database, { healthCheckThresholdMs: 60_000, pollIntervalMs: 60_000 });
    child.kill('SIGTERM');
    await eventually(async () => peer.activeTriggerIds.length === 20, 'the peer to run all 20', 10_000, 10);
    expect(await exited(child)).to.equal(0);
    const ended = await t.database.db.selectFrom('job').select(['state', 'end_date']).where('id', '=', job.id).executeTakeFirstOrThrow();
    expect(ended.state).to.equal('success');
    expect(ended.end_date).to.be.instanceOf(Date);
    expect(await ownedBy(peer.jobId!)).to.equal(20);
    expect((await statesOf(t.database, set)).every((s) => s === 'deferred')).to.equal(true);
  });

  it('exits at once on a second SIGTERM while the first is still draining', async () => {
    // A trigger that ignores its abort signal keeps the graceful shutdown waiting (10 s by default).
    await insertDeferred(t.database, 1, () => ({ mode: 'stubborn' }));
    const child = spawnTriggerer(t.url, [], 'info');
    children.push(child);
    const job = await jobOf(child);
    await eventually(async () => (await ownedBy(job.id)) === 1, 'the claim');
    const draining = logged(child, '"msg":"cancelling trigger"');
    child.kill('SIGTERM');
    await draining; // the first signal was handled: the drain has begun, and waits on the stubborn trigger
    expect(child.exitCode, 'still draining after the first signal').to.equal(null);
    child.kill('SIGTERM');
    // 143 is the forced exit; a drain that ran to its end would exit 0.
    expect(await exited(child)).to.equal(143);
  });

  it('after a SIGKILL mid-wait, every deferred task still resumes exactly once', async () => {
    const resumes = await installResumeAudit(t.database);
    const dueAt = Date.now() + 1500;
    const set = await insertDeferred(t.database, 50, (i) => ({ mode: 'fire', afterMs: Math.max(0, dueAt - Date.now()) + (i % 5) * 100 }));
    const child = spawnTriggerer(t.url, ['--health-check-threshold', '2', '--heartbeat-interval', '0.5']);
    children.push(child);
    const job = await jobOf(child);
    await eventually(async () => (await ownedBy(job.id)) === 50, 'the child to claim all 50');
    child.kill('SIGKILL');
    await exited(child);
    expect(await ownedBy(job.id), 'a killed triggerer releases nothing').to.equal(50);
    const peer = await startTriggerer(t.database, { heartbeatIntervalMs: 500, healthCheckThresholdMs: 2000 });
    await eventually(async () => (await statesOf(t.database, set)).every((s) => s === 'scheduled'), 'every task to resume', 20_000);
    const counts = await resumes();
    expect(counts.size).to.equal(50);
    for (const key of set.keys) expect(counts.get(`${key.runId}/${key.taskId}`), key.taskId).to.equal(1);
    // The killed triggerer's spent rows are taken over, run again (their tasks no longer wait: nothing resumes) and deleted.
    await eventually(async () => (await t.database.db.selectFrom('trigger').selectAll().execute()).length === 0, 'every trigger row to be deleted');
    const after = await resumes();
    expect(after.size).to.equal(50);
    for (const key of set.keys) expect(after.get(`${key.runId}/${key.taskId}`), `${key.taskId} after the rerun`).to.equal(1);
    expect(peer.state).to.equal('running');
  });

  it('answers jobs check, and serves Prometheus metrics', async () => {
    const env = { TSFLOW_DATABASE_URL: t.url };
    const none = await tsflow(['jobs', 'check', '--job-type', 'triggerer'], env);
    expect(none.code).to.equal(1);
    expect(none.stderr).to.contain('No alive jobs found.');

    const port = await freePort();
    const child = spawnTriggerer(t.url, ['--metrics-port', String(port), '--capacity', '7']);
    children.push(child);
    await jobOf(child);
    const alive = await tsflow(['jobs', 'check', '--job-type', 'triggerer'], env);
    expect(alive.code, alive.stderr).to.equal(0);
    expect(alive.stdout).to.match(/Found 1 alive job/);

    await insertDeferred(t.database, 2, () => ({ mode: 'fire', afterMs: 0 }));
    await insertDeferred(t.database, 1, () => ({ mode: 'hang' }));
    const metrics = await eventually(async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^tsflow_triggerer_triggers_fired_total 2$/m.test(text) && /^tsflow_triggerer_triggers_running 1$/m.test(text) && text;
    }, 'two triggers fired and one running');
    expect(metrics).to.match(/^tsflow_triggerer_triggers_running 1$/m);
    expect(metrics).to.match(/^tsflow_triggerer_capacity_left 6$/m);
    expect(metrics).to.contain('# TYPE tsflow_triggerer_event_lateness_seconds summary');
    child.kill('SIGTERM');
    expect(await exited(child)).to.equal(0);
  });

  it('opens the connections its work needs at start, not in the middle of a burst', async () => {
    const child = spawnTriggerer(t.url);
    children.push(child);
    await jobOf(child);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = 'tsflow-triggerer' AND datname = current_database()`.execute(t.database.db);
    // Two event writers, the claim loop and the heartbeat; the LISTEN connection is counted apart.
    expect(rows[0]?.n).to.equal(4);
    child.kill('SIGTERM');
    expect(await exited(child)).to.equal(0);
  });

  it('lists triggers with owner, task and due time', async () => {
    const peer = await startTriggerer(t.database);
    const set = await insertDeferred(t.database, 1, () => ({ mode: 'hang' }));
    await eventually(async () => peer.activeTriggerIds.length === 1, 'the claim');
    await insertDeferred(t.database, 1, () => ({ moment: '2030-01-01T00:00:00Z' }), { classpath: 'tsflow.triggers.DateTimeTrigger', notify: false });
    await peer.stop();
    const result = await tsflow(['triggers', 'list', '--json', '--triggers-folder', FIXTURE_TRIGGERS], { TSFLOW_DATABASE_URL: t.url });
    expect(result.code, result.stderr).to.equal(0);
    const listing = JSON.parse(result.stdout) as { classpath: string; tasks: unknown[]; dueAt: string | null; triggererId: number | null }[];
    expect(listing).to.have.length(2);
    expect(listing[0]).to.deep.include({ classpath: 'test.ControlledTrigger', dueAt: null, triggererId: null });
    expect(listing[0]!.tasks).to.deep.equal([set.keys[0]]);
    expect(listing[1]).to.deep.include({ classpath: 'tsflow.triggers.DateTimeTrigger', dueAt: '2030-01-01T00:00:00.000Z' });
  });
});
