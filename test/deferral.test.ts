import { expect } from 'chai';
import type { DagBag } from '../src/dag-bag/dag-bag.ts';
import { decodeTriggerKwargs } from '../src/db/trigger-kwargs.ts';
import type { Dag } from '../src/sdk/dag.ts';
import type { JsonObject } from '../src/sdk/json.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { createRun, loadFixtureDags, queue, runTask, startTriggerer, taskInstance } from './support/rig.ts';

describe('deferral, end to end through the runner and a triggerer', () => {
  let t: TestDatabase;
  let bag: DagBag;
  let dag: Dag;
  let runNo = 0;

  before(async () => {
    t = await createTestDatabase();
    bag = await loadFixtureDags();
    dag = bag.getDag('defer_dag');
  });
  after(() => t.drop());
  afterEach(stopAll);

  async function deferredRun(trigger: JsonObject, extraConf: JsonObject = {}) {
    const runId = `run_${++runNo}`;
    await createRun(t.database, dag, runId, { trigger, ...extraConf });
    const key = { dagId: 'defer_dag', runId, taskId: 'defer' };
    await queue(t.database, key);
    const result = await runTask(t.database, dag, key);
    expect(result.state, result.error).to.equal('deferred');
    return key;
  }

  it('writes the trigger row and the deferred state together', async () => {
    const before = Date.now();
    const key = await deferredRun({ mode: 'hang' }, { timeoutSeconds: 60 });
    const ti = await taskInstance(t.database, key);
    expect(ti.state).to.equal('deferred');
    expect(ti.next_method).to.equal('executeComplete');
    expect(ti.next_kwargs).to.deep.equal({ note: 'from execute', tryAtDefer: 1 });
    expect(ti.trigger_timeout).to.be.instanceOf(Date);
    // 60 s after the defer, which happened between `before` and now (a little slack: the database's clock rounds differently).
    expect(ti.trigger_timeout!.getTime()).to.be.within(before + 60_000 - 5, Date.now() + 60_000 + 5);
    const trigger = await t.database.db.selectFrom('trigger').selectAll().where('id', '=', ti.trigger_id!).executeTakeFirstOrThrow();
    expect(trigger.classpath).to.equal('test.ControlledTrigger');
    expect(decodeTriggerKwargs(trigger.kwargs)).to.deep.equal({ mode: 'hang' });
    expect(trigger.triggerer_id).to.equal(null);
  });

  it("caps the trigger timeout at the task's executionTimeout, measured from the try's start", async () => {
    const capped = bag.getDag('capped_defer_dag');
    const runId = `run_${++runNo}`;
    await createRun(t.database, capped, runId, { trigger: { mode: 'hang' }, timeoutSeconds: 3600 });
    const key = { dagId: 'capped_defer_dag', runId, taskId: 'defer' };
    await queue(t.database, key);
    expect((await runTask(t.database, capped, key)).state).to.equal('deferred');
    const ti = await taskInstance(t.database, key);
    expect(ti.trigger_timeout!.getTime() - ti.start_date!.getTime()).to.be.within(1900, 2100);
  });

  it('leaves no trigger row behind when the deferred state cannot be written', async () => {
    const runId = `run_${++runNo}`;
    await createRun(t.database, dag, runId, { trigger: { mode: 'hang' } });
    const key = { dagId: 'defer_dag', runId, taskId: 'defer' };
    await queue(t.database, key);
    const before = await t.database.db.selectFrom('trigger').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    // The task instance is cleared while the task runs: the defer transaction must roll back whole.
    const operator = dag.getTask('defer');
    const original = operator.execute.bind(operator);
    operator.execute = async (context) => {
      await t.database.db.updateTable('task_instance').set({ state: null }).where('run_id', '=', runId).execute();
      return original(context);
    };
    try {
      const result = await runTask(t.database, dag, key);
      expect(result.state).to.equal('discarded');
    } finally {
      operator.execute = original;
    }
    const after = await t.database.db.selectFrom('trigger').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(after.n)).to.equal(Number(before.n));
    expect((await taskInstance(t.database, key)).state).to.equal(null);
  });

  it('hands the event payload and the defer kwargs to executeComplete, deletes the trigger, and keeps the try number', async () => {
    const triggerer = await startTriggerer(t.database);
    const key = await deferredRun({ mode: 'fire', afterMs: 20, payload: { rows: 42, file: 'a.csv' } });
    const { trigger_id: triggerId } = await taskInstance(t.database, key);
    const fired = await waitForEvent(triggerer, 'trigger:fired', (e) => e.triggerId === triggerId);
    expect(fired.result).to.equal('applied');
    expect(fired.task).to.deep.equal(key);

    const resumed = await taskInstance(t.database, key);
    expect(resumed.state).to.equal('scheduled');
    expect(resumed.trigger_id).to.equal(null);
    expect(resumed.next_kwargs).to.deep.equal({ note: 'from execute', tryAtDefer: 1, event: { rows: 42, file: 'a.csv' } });
    await eventually(
      async () => (await t.database.db.selectFrom('trigger').select('id').where('id', '=', triggerId!).executeTakeFirst()) === undefined,
      'the spent trigger row to be deleted',
    );

    await queue(t.database, key);
    const result = await runTask(t.database, dag, key);
    expect(result).to.deep.include({ state: 'success', tryNumber: 1 });
    const done = await taskInstance(t.database, key);
    expect(done.try_number, 'a resume is not a new try').to.equal(1);
    const xcom = await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', key.runId).executeTakeFirstOrThrow();
    expect(xcom.value).to.deep.equal({
      event: { rows: 42, file: 'a.csv' },
      kwargs: { note: 'from execute', tryAtDefer: 1 },
      tryAtResume: 1,
    });
  });

  it('fails the task with the message of a trigger that throws', async () => {
    const triggerer = await startTriggerer(t.database);
    const key = await deferredRun({ mode: 'throw', message: 'bucket s3://x is gone' });
    const failed = await waitForEvent(triggerer, 'trigger:failed', (e) => e.task?.runId === key.runId);
    expect(failed.error).to.contain('bucket s3://x is gone');
    const ti = await taskInstance(t.database, key);
    expect(ti.state).to.equal('scheduled');
    expect(ti.next_method).to.equal('__fail__');
    expect(ti.next_kwargs).to.have.property('error').that.contains('bucket s3://x is gone');
    expect(ti.next_kwargs).to.have.property('traceback').that.contains('test-triggers.ts');

    await queue(t.database, key);
    const result = await runTask(t.database, dag, key);
    expect(result.state).to.equal('failed');
    expect(result.error).to.match(/TaskDeferralError: .*bucket s3:\/\/x is gone/);
    expect((await taskInstance(t.database, key)).error).to.contain('bucket s3://x is gone');
  });

  it('runs each trigger on exactly one of two triggerers', async () => {
    const first = await startTriggerer(t.database, { capacity: 1000 });
    const second = await startTriggerer(t.database, { capacity: 1000 });
    const started = new Map<number, string[]>();
    for (const [name, triggerer] of [['first', first], ['second', second]] as const) {
      triggerer.on('trigger:started', ({ triggerId }) => started.set(triggerId, [...(started.get(triggerId) ?? []), name]));
    }
    const keys = [];
    for (let i = 0; i < 30; i++) keys.push(await deferredRun({ mode: 'hang' }));
    const ids = await Promise.all(keys.map(async (k) => (await taskInstance(t.database, k)).trigger_id!));
    const deadline = Date.now() + 10_000;
    while (!ids.every((id) => started.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const id of ids) expect(started.get(id), `trigger ${id}`).to.have.length(1);
    const owners = await t.database.db.selectFrom('trigger').select(['id', 'triggerer_id']).where('id', 'in', ids).execute();
    for (const row of owners) {
      const runner = started.get(row.id)![0] === 'first' ? first : second;
      expect(row.triggerer_id).to.equal(runner.jobId);
    }
  });
});
