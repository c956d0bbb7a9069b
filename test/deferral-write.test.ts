import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { writeDeferral, type DeferralWrite } from '../src/db/deferral.ts';
import { Channels } from '../src/db/protocol.ts';
import type { TaskInstanceKey, TaskInstanceState } from '../src/db/schema.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';

describe('writeDeferral, the one deferral write', () => {
  let t: TestDatabase;
  let taskNo = 0;

  before(async () => {
    t = await createTestDatabase();
    await upsertDags(t.database.db, [{ dagId: 'dw', fileloc: '' }]);
    await createDagRun(t.database.db, { dagId: 'dw', runId: 'r', conf: {}, logicalDate: new Date() });
  });
  after(() => t.drop());

  /** A task instance in `state`, try `tryNumber`, whose try started `startedAgoS` seconds ago by the database clock. */
  async function taskIn(state: TaskInstanceState, tryNumber: number, startedAgoS = 0): Promise<TaskInstanceKey> {
    const key = { dagId: 'dw', runId: 'r', taskId: `t${++taskNo}` };
    await sql`
      INSERT INTO task_instance (dag_id, run_id, task_id, state, try_number, start_date, hostname, pid)
      VALUES (${key.dagId}, ${key.runId}, ${key.taskId}, ${state}, ${tryNumber},
              clock_timestamp() - make_interval(secs => ${startedAgoS}::float8), 'worker', 42)`.execute(t.database.db);
    return key;
  }

  const row = (key: TaskInstanceKey) =>
    t.database.db.selectFrom('task_instance').selectAll().where('dag_id', '=', key.dagId).where('run_id', '=', key.runId).where('task_id', '=', key.taskId).executeTakeFirstOrThrow();
  const triggerCount = async () => Number((await sql<{ n: number }>`SELECT count(*)::int AS n FROM trigger`.execute(t.database.db)).rows[0]?.n);
  const dbNow = async () => (await sql<{ now: Date }>`SELECT clock_timestamp() AS now`.execute(t.database.db)).rows[0]!.now.getTime();

  const deferral = (fence: DeferralWrite['fence'], timeoutSeconds: number | null, executionTimeoutSeconds: number | null = null): DeferralWrite => ({
    fence,
    trigger: { classpath: 'test.ControlledTrigger', kwargs: { mode: 'hang' }, priorityWeight: 7 },
    nextMethod: 'executeComplete',
    nextKwargs: { note: 'kept' },
    timeoutSeconds,
    executionTimeoutSeconds,
  });

  it("defers a running try in place: same try, same start, the trigger timeout by the database's clock", async () => {
    const key = await taskIn('running', 2, 5);
    const before = await row(key);
    const lowest = await dbNow();
    const written = await writeDeferral(t.database.db, key, deferral({ running: 2 }, 60));
    const highest = await dbNow();
    expect(written).to.include({ tryNumber: 2 });
    const after = await row(key);
    expect(after).to.deep.include({ state: 'deferred', try_number: 2, trigger_id: written!.triggerId, next_method: 'executeComplete', hostname: null, pid: null });
    expect(after.next_kwargs).to.deep.equal({ note: 'kept' });
    expect(after.start_date).to.deep.equal(before.start_date);
    expect(after.trigger_timeout!.getTime()).to.be.within(lowest + 60_000, highest + 60_000);
    expect(written!.triggerTimeout).to.deep.equal(after.trigger_timeout);
    const trigger = await t.database.db.selectFrom('trigger').selectAll().where('id', '=', written!.triggerId).executeTakeFirstOrThrow();
    expect(trigger).to.deep.include({ classpath: 'test.ControlledTrigger', priority_weight: 7, triggerer_id: null });
  });

  it('caps the trigger timeout at start_date + executionTimeout, and takes either bound alone', async () => {
    const capped = await taskIn('running', 1, 10);
    await writeDeferral(t.database.db, capped, deferral({ running: 1 }, 3600, 30));
    const cappedRow = await row(capped);
    expect(cappedRow.trigger_timeout!.getTime() - cappedRow.start_date!.getTime()).to.equal(30_000);

    const onlyExecution = await taskIn('running', 1, 10);
    await writeDeferral(t.database.db, onlyExecution, deferral({ running: 1 }, null, 30));
    const onlyRow = await row(onlyExecution);
    expect(onlyRow.trigger_timeout!.getTime() - onlyRow.start_date!.getTime()).to.equal(30_000);

    const none = await taskIn('running', 1);
    await writeDeferral(t.database.db, none, deferral({ running: 1 }, null, null));
    expect((await row(none)).trigger_timeout).to.equal(null);
  });

  it('writes nothing when the try is no longer running (another try, or another state)', async () => {
    const before = await triggerCount();
    const retried = await taskIn('running', 3);
    expect(await writeDeferral(t.database.db, retried, deferral({ running: 2 }, 60))).to.equal(undefined);
    const cleared = await taskIn('scheduled', 2);
    expect(await writeDeferral(t.database.db, cleared, deferral({ running: 2 }, 60))).to.equal(undefined);
    expect(await triggerCount()).to.equal(before);
    expect((await row(retried)).state).to.equal('running');
  });

  it('starts a scheduled task instance’s next try in the triggerer: try + 1, started now', async () => {
    const key = await taskIn('scheduled', 1, 3600);
    const written = await writeDeferral(t.database.db, key, deferral({ scheduledNewTry: true }, 60, 30));
    expect(written).to.include({ tryNumber: 2 });
    const after = await row(key);
    expect(after).to.deep.include({ state: 'deferred', try_number: 2, trigger_id: written!.triggerId, error: null, end_date: null });
    // A new try starts now, so executionTimeout (30 s) bounds it before the sensor timeout (60 s).
    expect(after.trigger_timeout!.getTime() - after.start_date!.getTime()).to.equal(30_000);
    expect(Date.now() - after.start_date!.getTime()).to.be.below(60_000);
  });

  it('skips a scheduled row another transaction holds (the enqueue), instead of waiting for it', async () => {
    const key = await taskIn('scheduled', 0);
    const before = await triggerCount();
    const holder = t.open(1);
    await holder.db.transaction().execute(async (trx) => {
      await sql`SELECT 1 FROM task_instance WHERE task_id = ${key.taskId} FOR UPDATE`.execute(trx);
      expect(await writeDeferral(t.database.db, key, deferral({ scheduledNewTry: true }, 60))).to.equal(undefined);
    });
    expect(await triggerCount()).to.equal(before);
    const resumeRow = await taskIn('scheduled', 1);
    await sql`UPDATE task_instance SET next_method = 'executeComplete' WHERE task_id = ${resumeRow.taskId}`.execute(t.database.db);
    expect(await writeDeferral(t.database.db, resumeRow, deferral({ scheduledNewTry: true }, 60)), 'a resume is not a new try').to.equal(undefined);
  });

  it("wakes the triggerers with one 'new' at commit", async () => {
    const listener = new pg.Client({ connectionString: t.url });
    await listener.connect();
    try {
      const heard: { channel: string; payload: string | undefined }[] = [];
      listener.on('notification', (n) => heard.push({ channel: n.channel, payload: n.payload }));
      await listener.query(`LISTEN ${Channels.trigger}`);
      const key = await taskIn('running', 1);
      await writeDeferral(t.database.db, key, deferral({ running: 1 }, null));
      await eventually(async () => heard.length > 0, 'the notification');
      expect(heard).to.deep.equal([{ channel: Channels.trigger, payload: 'new' }]);
    } finally {
      await listener.end();
    }
  });
});
