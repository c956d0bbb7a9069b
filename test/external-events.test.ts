import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { sendEvent } from '../src/db/events.ts';
import type { TaskInstanceKey } from '../src/db/schema.ts';
import { BaseOperator, dag, EventSensor, ExternalEventTrigger, type BaseOperatorOptions, type Dag, type JsonValue, type TaskContext } from '../src/sdk/index.ts';
import type { ExternalEventTriggerKwargs } from '../triggers/external-event-trigger.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { createRun, queue, runTask, startTriggerer, taskInstance } from './support/rig.ts';

/** Defers to an ExternalEventTrigger at once (no first poke), so the triggerer's look-back is what finds an earlier event. */
class WaitForEvent extends BaseOperator<JsonValue | undefined> {
  readonly #kwargs: ExternalEventTriggerKwargs;
  constructor(options: BaseOperatorOptions & ExternalEventTriggerKwargs) {
    const { key, match, since, ...rest } = options;
    super(rest);
    this.#kwargs = { key, ...(match ? { match } : {}), ...(since !== undefined ? { since } : {}) };
  }
  override execute(): never {
    this.defer({ trigger: new ExternalEventTrigger(this.#kwargs), method: 'executeComplete' });
  }
  executeComplete(_context: TaskContext, event: JsonValue | undefined): JsonValue | undefined {
    return event;
  }
}

describe('external events: ExternalEventTrigger, EventSensor and tsflow_send_event', function () {
  this.timeout(60_000);
  let t: TestDatabase;
  let runNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(() => stopAll());

  /** Creates a run of `d` and runs each of `taskIds` once in this process (each defers, or pokes). */
  async function runTasks(d: Dag, taskIds: string[]): Promise<TaskInstanceKey[]> {
    const runId = await createRun(t.database, d, `r${++runNo}`);
    const keys = taskIds.map((taskId) => ({ dagId: d.dagId, runId, taskId }));
    for (const key of keys) {
      await queue(t.database, key);
      await runTask(t.database, d, key);
    }
    return keys;
  }

  const state = async (key: TaskInstanceKey) => (await taskInstance(t.database, key)).state;
  const xcom = async (key: TaskInstanceKey) =>
    (await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', key.runId).where('task_id', '=', key.taskId).where('dag_id', '=', key.dagId).executeTakeFirst())?.value;

  /** Runs `fn` inside a transaction on its own connection, as an application would, and commits or rolls back. */
  async function inTransaction(end: 'COMMIT' | 'ROLLBACK', fn: (client: pg.Client) => Promise<void>): Promise<void> {
    const client = new pg.Client({ connectionString: t.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await fn(client);
      await client.query(end);
    } finally {
      await client.end();
    }
  }

  it('an event rolled back wakes nothing; one committed wakes every waiter of its key within 100 ms, through NOTIFY', async () => {
    const d = dag({ dagId: 'events_fanout' }, () => {
      for (const n of [1, 2, 3]) new EventSensor({ taskId: `wait_${n}`, key: 'order-7-paid', timeout: 600 });
      new EventSensor({ taskId: 'other_key', key: 'order-8-paid', timeout: 600 });
    });
    const keys = await runTasks(d, ['wait_1', 'wait_2', 'wait_3', 'other_key']);
    for (const key of keys) expect(await state(key)).to.equal('deferred');
    // Polls far apart: only a notification can wake the waits in time.
    const triggerer = await startTriggerer(t.database, { pollIntervalMs: 60_000, eventPollIntervalMs: 600_000 });
    await eventually(async () => triggerer.eventWaits === 4, 'the four waits to be watched', 20_000);

    await inTransaction('ROLLBACK', async (client) => {
      await client.query(`SELECT tsflow_send_event('order-7-paid', '{"amount": 1}')`);
    });
    const fired: TaskInstanceKey[] = [];
    triggerer.on('trigger:fired', ({ task }) => {
      if (task) fired.push(task);
    });
    // A roll back leaves neither a row nor a notification; a committed event of another key after it
    // proves the watcher was awake when the rolled-back one would have arrived.
    await inTransaction('COMMIT', async (client) => {
      await client.query(`SELECT tsflow_send_event('order-8-paid', '{}')`);
    });
    await eventually(async () => fired.length === 1, 'the other key\'s waiter to fire', 20_000);
    expect(fired.map((k) => k.taskId)).to.deep.equal(['other_key']);
    expect((await sql<{ n: number }>`SELECT count(*)::int AS n FROM event WHERE key = 'order-7-paid'`.execute(t.database.db)).rows[0]?.n).to.equal(0);

    let eventId = 0;
    await inTransaction('COMMIT', async (client) => {
      eventId = Number((await client.query<{ id: string }>(`SELECT tsflow_send_event('order-7-paid', '{"amount": 42}') AS id`)).rows[0]?.id);
    });
    await eventually(async () => fired.length === 4, 'the three waiters to fire', 20_000);
    // The wake latency, all on the database clock: the event row's insert to the resume write.
    const { rows } = await sql<{ task_id: string; ms: number }>`
      SELECT ti.task_id, (extract(epoch FROM ti.scheduled_at - e.created_at) * 1000)::float8 AS ms
      FROM task_instance ti, event e WHERE e.id = ${eventId} AND ti.task_id LIKE 'wait_%' AND ti.run_id = ${keys[0]?.runId}`.execute(t.database.db);
    expect(rows).to.have.length(3);
    for (const row of rows) {
      expect(row.ms, `${row.task_id}: event to fire`).to.be.within(0, 100);
    }
    console.log(`      event → fire: ${rows.map((r) => `${r.task_id} ${Number(r.ms).toFixed(1)} ms`).join(', ')}`);

    // Consumption is recorded, and each sensor resumes with the event as its XCom.
    await eventually(async () => {
      const { rows: consumers } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM event_consumer WHERE event_id = ${eventId}`.execute(t.database.db);
      return consumers[0]?.n === 3;
    }, 'the three consumers to be recorded');
    const first = keys[0] as TaskInstanceKey;
    await queue(t.database, first);
    await runTask(t.database, d, first);
    expect(await state(first)).to.equal('success');
    expect(await xcom(first)).to.deep.include({ eventId, key: 'order-7-paid', payload: { amount: 42 } });
  });

  it('an event sent before the wait counts within since; an older one does not; match filters on payload fields', async () => {
    // Sent before any task runs: 'early' sees it; the one backdated beyond 'recent's since does not count.
    const early = await sendEvent(t.database.db, 'batch-ready', { rows: 10 }, 'test');
    const old = await sendEvent(t.database.db, 'report-ready', { n: 1 }, 'test');
    await sql`UPDATE event SET created_at = now() - interval '2 hours' WHERE id = ${old}`.execute(t.database.db);
    const expired = await sendEvent(t.database.db, 'long-gone', {}, 'test');
    await sql`UPDATE event SET created_at = now() - interval '25 hours' WHERE id = ${expired}`.execute(t.database.db);

    const d = dag({ dagId: 'events_since' }, () => {
      new WaitForEvent({ taskId: 'early', key: 'batch-ready' });
      new WaitForEvent({ taskId: 'recent', key: 'report-ready', since: { hours: 1 } });
      new WaitForEvent({ taskId: 'paid', key: 'order-9', match: { path: 'status', equals: 'paid' } });
      new WaitForEvent({ taskId: 'any', key: 'order-9' });
    });
    const keys = await runTasks(d, ['early', 'recent', 'paid', 'any']);
    const [earlyKey, recentKey, paidKey, anyKey] = keys as [TaskInstanceKey, TaskInstanceKey, TaskInstanceKey, TaskInstanceKey];
    for (const key of keys) expect(await state(key)).to.equal('deferred');
    const triggerer = await startTriggerer(t.database, { pollIntervalMs: 60_000, eventPollIntervalMs: 600_000 });
    const fired: string[] = [];
    triggerer.on('trigger:fired', ({ task }) => {
      if (task) fired.push(task.taskId);
    });

    await eventually(async () => fired.includes('early'), 'the wait on an event sent before it to fire', 20_000);
    await eventually(async () => triggerer.eventWaits === 3, 'the other three waits to be watched', 20_000);
    // The retention sweep (run by the triggerer at start) deleted the 25-hour-old event.
    await eventually(async () => (await sql`SELECT 1 FROM event WHERE id = ${expired}`.execute(t.database.db)).rows.length === 0, 'the expired event to be swept');

    // 'pending' does not match 'paid': only 'any' fires on it, in the same look.
    const pending = await sendEvent(t.database.db, 'order-9', { status: 'pending' }, 'test');
    await eventually(async () => fired.includes('any'), "the match-less waiter to fire", 20_000);
    expect(fired).to.not.include('paid');
    const paid = await sendEvent(t.database.db, 'order-9', { status: 'paid', amount: 5 }, 'test');
    // A new 'report-ready' event wakes 'recent': the two-hour-old one, though older, did not count.
    const fresh = await sendEvent(t.database.db, 'report-ready', { n: 2 }, 'test');
    await eventually(async () => fired.includes('paid') && fired.includes('recent'), 'the matching events to fire their waiters', 20_000);

    for (const key of keys) {
      await queue(t.database, key);
      await runTask(t.database, d, key);
      expect(await state(key), key.taskId).to.equal('success');
    }
    expect(await xcom(earlyKey)).to.deep.include({ eventId: early, payload: { rows: 10 }, sender: 'test' });
    expect(await xcom(anyKey)).to.deep.include({ eventId: pending });
    expect(await xcom(paidKey)).to.deep.include({ eventId: paid, payload: { status: 'paid', amount: 5 } });
    expect(await xcom(recentKey)).to.deep.include({ eventId: fresh });
  });

  it('EventSensor pokes too: deferrable: false finds a stored event on a worker; a deferrable one takes an earlier event at its first poke', async () => {
    const d = dag({ dagId: 'events_poke' }, () => {
      new EventSensor({ taskId: 'poking', key: 'poke-key', deferrable: false, pokeInterval: 0.1, timeout: 30, match: { path: 'ok', equals: true } });
      new EventSensor({ taskId: 'first_poke', key: 'poke-key' });
    });
    const id = await sendEvent(t.database.db, 'poke-key', { ok: true }, null);
    const keys = await runTasks(d, ['poking', 'first_poke']);
    for (const key of keys) {
      expect(await state(key), key.taskId).to.equal('success');
      expect(await xcom(key)).to.deep.include({ eventId: id, payload: { ok: true } });
    }
    // sendEvent passes a null sender: the SQL function records the database role.
    const { rows } = await sql<{ sender: string }>`SELECT sender FROM event WHERE id = ${id}`.execute(t.database.db);
    expect(rows[0]?.sender).to.be.a('string').and.not.equal('');
  });

  it('a bad key is refused by the trigger, and by the SQL function', async () => {
    expect(() => new ExternalEventTrigger({ key: '' })).to.throw(/key must be 1 to 250/);
    expect(() => new ExternalEventTrigger({ key: 'k', match: { path: '', equals: 1 } })).to.throw(/match must be/);
    let error: unknown;
    await sql`SELECT tsflow_send_event('', '{}')`.execute(t.database.db).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/key must be 1 to 250 characters/);
  });

  it('after the LISTEN connection comes back, an event sent while it was down is found', async () => {
    const d = dag({ dagId: 'events_reconnect' }, () => {
      new EventSensor({ taskId: 'wait', key: 'during-outage', timeout: 600 });
    });
    const [key] = (await runTasks(d, ['wait'])) as [TaskInstanceKey];
    const triggerer = await startTriggerer(t.database, { pollIntervalMs: 60_000, eventPollIntervalMs: 600_000 });
    await eventually(async () => triggerer.eventWaits === 1, 'the wait to be watched', 20_000);
    const fired = waitForEvent(triggerer, 'trigger:fired', () => true, 30_000);
    // Kill the LISTEN connection, and send the event before pg-listen reconnects.
    await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tsflow-listen' AND datname = current_database()`.execute(t.database.db);
    await sendEvent(t.database.db, 'during-outage', {}, 'test');
    await fired;
    expect(await state(key)).to.equal('scheduled');
  });
});
