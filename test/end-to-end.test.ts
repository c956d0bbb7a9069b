import { expect } from 'chai';
import { createDagRun, getDagRun, upsertDags } from '../src/db/dag-runs.ts';
import type { TaskInstanceState } from '../src/db/schema.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { loadFixtureDags, startScheduler, startTriggerer, taskInstance } from './support/rig.ts';

describe('scheduler + sequential executor + triggerer', () => {
  let t: TestDatabase;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(stopAll);

  it('runs other work while deferrable sensors wait, so a waiting sensor holds no executor slot', async () => {
    const bag = await loadFixtureDags();
    const dag = bag.getDag('sensor_dag');
    const { scheduler, executor } = await startScheduler(t.database, bag);
    await startTriggerer(t.database);
    expect(executor.parallelism).to.equal(1);

    const log: { task: string; state: TaskInstanceState | string; running: number }[] = [];
    scheduler.on('ti:state', ({ key, state }) => log.push({ task: key.taskId, state, running: executor.runningCount }));
    const done = waitForEvent(scheduler, 'run:state', (r) => r.runId === 'r1' && r.state !== 'running', 20_000);
    await upsertDags(t.database.db, [{ dagId: dag.dagId, fileloc: dag.fileloc ?? '' }]);
    await createDagRun(t.database.db, { dagId: 'sensor_dag', runId: 'r1', conf: {}, logicalDate: new Date() });
    expect((await done).state).to.equal('success');

    const index = (task: string, state: string) => log.findIndex((e) => e.task === task && e.state === state);
    const bothDeferred = Math.max(index('sensor_a', 'deferred'), index('sensor_b', 'deferred'));
    const independentDone = index('independent', 'success');
    const firstResume = Math.min(
      ...['sensor_a', 'sensor_b'].map((s) => log.findIndex((e, i) => i > bothDeferred && e.task === s && e.state === 'running')),
    );
    expect(bothDeferred, 'both sensors deferred').to.be.greaterThan(-1);
    // With one slot, 'independent' could only run while the sensors waited if they held no slot.
    expect(independentDone, 'the independent task ran while both sensors were deferred').to.be.within(bothDeferred + 1, firstResume - 1);
    for (const sensor of ['sensor_a', 'sensor_b']) {
      const ti = await taskInstance(t.database, { dagId: 'sensor_dag', runId: 'r1', taskId: sensor });
      expect(ti.state).to.equal('success');
      expect(ti.try_number).to.equal(1);
    }
    expect(index('after_sensors', 'success')).to.be.greaterThan(firstResume);
    expect((await getDagRun(t.database.db, 'sensor_dag', 'r1'))?.state).to.equal('success');
  });

  it('resumes a custom deferring operator through the whole loop and stores its result', async () => {
    const bag = await loadFixtureDags();
    const { scheduler } = await startScheduler(t.database, bag);
    await startTriggerer(t.database);
    const done = waitForEvent(scheduler, 'run:state', (r) => r.runId === 'r2' && r.state !== 'running', 20_000);
    await upsertDags(t.database.db, [{ dagId: 'defer_dag', fileloc: '' }]);
    await createDagRun(t.database.db, {
      dagId: 'defer_dag',
      runId: 'r2',
      conf: { trigger: { mode: 'fire', afterMs: 50, payload: { status: 'ready' } } },
      logicalDate: new Date(),
    });
    expect((await done).state).to.equal('success');
    const xcom = await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', 'r2').executeTakeFirstOrThrow();
    expect(xcom.value).to.deep.include({ event: { status: 'ready' }, tryAtResume: 1 });
    await eventually(async () => (await t.database.db.selectFrom('trigger').selectAll().execute()).length === 0, 'the spent trigger row to be deleted');
  });
});
