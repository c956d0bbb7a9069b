import { expect } from 'chai';
import { dag, task, taskGroup, type TaskContext } from '../src/sdk/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { runThroughScheduler } from './support/dag-runner.ts';

describe('task groups, run through the scheduler (real PostgreSQL)', function () {
  this.timeout(60_000);
  let t: TestDatabase;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(() => stopAll());

  it('run a group after its upstream and before its downstream, with the group\'s default args', async () => {
    const order: string[] = [];
    const step = task(function step(ctx: TaskContext) {
      order.push(`${ctx.taskId}#${ctx.tryNumber}`);
      return ctx.taskId;
    });
    // Fails its first try: only the group's default retries let it succeed.
    const flaky = task(function flaky(ctx: TaskContext) {
      order.push(`${ctx.taskId}#${ctx.tryNumber}`);
      if (ctx.tryNumber === 1) throw new Error('first try fails');
      return 'ok';
    });
    const d = dag({ dagId: 'group_run', defaultArgs: { retries: 0 } }, () => {
      const first = step();
      const group = taskGroup('middle', { defaultArgs: { retries: 1, retryDelay: 0 } }, () => {
        step();
        flaky();
      });
      first.setDownstream(group);
      group.setDownstream(step.override({ taskId: 'last' })());
    });
    expect(d.getTask('middle.flaky').settings.retries).to.equal(1);
    const { state, seen } = await runThroughScheduler(t, d, { timeoutMs: 40_000 });
    expect(state, JSON.stringify(seen)).to.equal('success');
    expect(order[0]).to.equal('step#1');
    expect(order.slice(1, -1).sort()).to.deep.equal(['middle.flaky#1', 'middle.flaky#2', 'middle.step#1']);
    expect(order.at(-1), 'the group\'s downstream runs after all of it, retry included').to.equal('last#1');
    expect(seen.filter((s) => s.task === 'middle.flaky').map((s) => s.state)).to.include('up_for_retry');
  });
});
