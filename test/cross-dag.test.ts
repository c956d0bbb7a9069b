import { expect } from 'chai';
import { sql } from 'kysely';
import { DateTime } from 'luxon';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { serializeDag } from '../src/dag-bag/serialized-dag.ts';
import { createDagRun } from '../src/db/dag-runs.ts';
import { recordDags } from '../src/db/serialized-dags.ts';
import { sleep } from '../src/common/sleep.ts';
import { BaseOperator, dag, ExternalTaskSensor, TriggerDagRunOperator, type BaseOperatorOptions, type Dag, type TaskContext } from '../src/sdk/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { InProcessExecutor } from './support/in-process-executor.ts';
import { runEnded, startScheduler, startTriggerer, taskInstance } from './support/rig.ts';

/** The triggered DAG's task: sleeps `conf.sleepMs`, waits for the test's gate with `conf.gate`, fails when `conf.fail`, counts its runs. */
class ConfTask extends BaseOperator<null> {
  static calls = 0;
  static gate: Promise<void> = Promise.resolve();
  constructor(options: BaseOperatorOptions) {
    super(options);
  }

  override async execute(context: TaskContext): Promise<null> {
    ConfTask.calls += 1;
    const sleepMs = Number(context.conf['sleepMs'] ?? 0);
    if (sleepMs > 0) await sleep(sleepMs, context.signal);
    if (context.conf['gate'] === true) await ConfTask.gate;
    if (context.conf['fail'] === true) throw new Error('asked to fail');
    return null;
  }
}

describe('cross-DAG dependencies: TriggerDagRunOperator and ExternalTaskSensor', function () {
  this.timeout(60_000);
  let t: TestDatabase;
  let runNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(stopAll);

  const child = dag({ dagId: 'child', schedule: null }, () => {
    new ConfTask({ taskId: 'work' });
  });

  /** A scheduler (four in-process slots: a poking task holds one) and a triggerer over `dags` plus the child DAG. */
  async function start(...dags: Dag[]) {
    const bag = DagBag.of([child, ...dags]);
    await recordDags(t.database.db, [child, ...dags].map((d) => serializeDag(d, `/dags/${d.dagId}.ts`)));
    const executor = new InProcessExecutor(t.database, bag, 4);
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const triggerer = await startTriggerer(t.database);
    return { scheduler, triggerer };
  }

  async function runDag(d: Dag, logicalDate = new Date(), conf = {}): Promise<string> {
    const runId = `run_${++runNo}`;
    await createDagRun(t.database.db, { dagId: d.dagId, runId, conf, logicalDate });
    return runId;
  }

  const runRow = (dagId: string, runId: string) =>
    t.database.db.selectFrom('dag_run').selectAll().where('dag_id', '=', dagId).where('run_id', '=', runId).executeTakeFirstOrThrow();
  const xcom = async (dagId: string, runId: string, taskId: string, key: string) =>
    (await t.database.db.selectFrom('xcom').select('value').where('dag_id', '=', dagId).where('run_id', '=', runId).where('task_id', '=', taskId).where('key', '=', key).executeTakeFirst())?.value;

  describe('TriggerDagRunOperator', () => {
    it('triggers the run with its conf, pushes its run id, and waits for it to succeed (poke)', async () => {
      const parent = dag({ dagId: 'parent_poke', schedule: null }, () => {
        new TriggerDagRunOperator({ taskId: 'trigger', triggerDagId: 'child', triggerRunId: 'from_parent_poke', conf: { sleepMs: 500 }, waitForCompletion: true, pokeInterval: 0.2 });
      });
      const { scheduler } = await start(parent);
      const runId = await runDag(parent);
      const ended = await runEnded(scheduler, runId, 40_000);
      expect(ended.state).to.equal('success');
      const childRun = await runRow('child', 'from_parent_poke');
      expect(childRun.state).to.equal('success');
      expect(childRun.conf).to.deep.equal({ sleepMs: 500 });
      expect(childRun.run_type).to.equal('manual');
      expect(await xcom('parent_poke', runId, 'trigger', 'trigger_run_id')).to.equal('from_parent_poke');
      // The parent ended after the child: it waited.
      const parentTask = await taskInstance(t.database, { dagId: 'parent_poke', runId, taskId: 'trigger' });
      expect((parentTask.end_date as Date).getTime()).to.be.at.least((childRun.end_date as Date).getTime());
    });

    it('names a default run id manual__<logical date> and does not wait without waitForCompletion', async () => {
      const logicalDate = DateTime.fromISO('2026-03-04T05:06:07Z', { zone: 'utc' });
      const parent = dag({ dagId: 'parent_nowait', schedule: null }, () => {
        new TriggerDagRunOperator({ taskId: 'trigger', triggerDagId: 'child', logicalDate, conf: { sleepMs: 3000 } });
      });
      const { scheduler } = await start(parent);
      const runId = await runDag(parent);
      expect((await runEnded(scheduler, runId, 40_000)).state).to.equal('success');
      const childRunId = 'manual__2026-03-04T05:06:07+00:00';
      expect(await xcom('parent_nowait', runId, 'trigger', 'trigger_run_id')).to.equal(childRunId);
      // Not waited for: the child's three-second task is still going when the parent ends.
      expect((await runRow('child', childRunId)).state).to.not.equal('success');
      expect((await runRow('child', childRunId)).logical_date.toISOString()).to.equal('2026-03-04T05:06:07.000Z');
      await eventually(async () => (await runRow('child', childRunId)).state === 'success', 'the child run to end', 40_000);
    });

    for (const deferrable of [false, true]) {
      it(`fails naming the run and its state when the run fails (${deferrable ? 'deferrable' : 'poke'})`, async () => {
        const dagId = `parent_fail_${deferrable}`;
        const parent = dag({ dagId, schedule: null }, () => {
          new TriggerDagRunOperator({ taskId: 'trigger', triggerDagId: 'child', triggerRunId: `failing_${deferrable}`, conf: { fail: true }, waitForCompletion: true, pokeInterval: 0.2, deferrable });
        });
        const { scheduler } = await start(parent);
        const runId = await runDag(parent);
        expect((await runEnded(scheduler, runId, 40_000)).state).to.equal('failed');
        const ti = await taskInstance(t.database, { dagId, runId, taskId: 'trigger' });
        expect(ti.state).to.equal('failed');
        expect(ti.error).to.include(`DAG 'child' run 'failing_${deferrable}' ended failed`);
        expect((await runRow('child', `failing_${deferrable}`)).state).to.equal('failed');
      });
    }

    it('with resetDagRun clears an existing run and runs it again; without, fails naming the run', async () => {
      const reset = dag({ dagId: 'parent_reset', schedule: null }, () => {
        new TriggerDagRunOperator({ taskId: 'trigger', triggerDagId: 'child', triggerRunId: 'same_id', resetDagRun: true, waitForCompletion: true, pokeInterval: 0.2 });
      });
      const noReset = dag({ dagId: 'parent_noreset', schedule: null }, () => {
        new TriggerDagRunOperator({ taskId: 'trigger', triggerDagId: 'child', triggerRunId: 'same_id' });
      });
      const { scheduler } = await start(reset, noReset);
      const calls = ConfTask.calls;
      const first = await runDag(reset);
      expect((await runEnded(scheduler, first, 40_000)).state).to.equal('success');
      const firstEnd = (await runRow('child', 'same_id')).end_date as Date;
      const second = await runDag(reset);
      expect((await runEnded(scheduler, second, 40_000)).state).to.equal('success');
      expect(ConfTask.calls - calls).to.equal(2);
      const again = await runRow('child', 'same_id');
      expect(again.state).to.equal('success');
      expect((again.end_date as Date).getTime()).to.be.greaterThan(firstEnd.getTime());
      expect((await taskInstance(t.database, { dagId: 'child', runId: 'same_id', taskId: 'work' })).try_number).to.equal(2);
      const third = await runDag(noReset);
      expect((await runEnded(scheduler, third, 40_000)).state).to.equal('failed');
      const ti = await taskInstance(t.database, { dagId: 'parent_noreset', runId: third, taskId: 'trigger' });
      expect(ti.error).to.include("DAG 'child' already has a run 'same_id'");
      expect(ConfTask.calls - calls).to.equal(2);
    });

    it('deferrable: resumes within 100 ms of the run ending, woken by NOTIFY, with no polling meanwhile', async () => {
      const parent = dag({ dagId: 'parent_defer', schedule: null }, () => {
        new TriggerDagRunOperator({ taskId: 'trigger', triggerDagId: 'child', triggerRunId: 'deferred_child', conf: { sleepMs: 3000 }, waitForCompletion: true, deferrable: true, pokeInterval: 0.05 });
      });
      const { scheduler, triggerer } = await start(parent);
      const states: string[] = [];
      scheduler.on('ti:state', ({ key, state }) => {
        if (key.dagId === 'parent_defer') states.push(state);
      });
      let checks = 0;
      triggerer.on('watch:checked', () => void (checks += 1));
      const runId = await runDag(parent);
      expect((await runEnded(scheduler, runId, 40_000)).state).to.equal('success');
      expect(states).to.include('deferred');
      const childRun = await runRow('child', 'deferred_child');
      expect(childRun.state).to.equal('success');
      // The event write sets the resumed task instance's scheduled_at (database clock); the run's end
      // is the database clock too. NOTIFY → one read of the watched runs → the event write.
      const ti = await taskInstance(t.database, { dagId: 'parent_defer', runId, taskId: 'trigger' });
      const latencyMs = (ti.scheduled_at as Date).getTime() - (childRun.end_date as Date).getTime();
      console.log(`      resumed ${latencyMs} ms after the triggered run ended; the run watcher read ${checks} time(s) in the run's ~3 s`);
      expect(latencyMs).to.be.at.least(0);
      expect(latencyMs).to.be.below(100);
      // One read when the trigger started, one on the run's end NOTIFY: a poll, even every 500 ms, would read 6 more.
      expect(checks).to.be.within(1, 3);
      expect(await xcom('parent_defer', runId, 'trigger', 'trigger_run_id')).to.equal('deferred_child');
    });

    it('deferrable: the run watcher reads again when its LISTEN connection comes back, and still wakes on the run end', async () => {
      const parent = dag({ dagId: 'parent_reconnect', schedule: null }, () => {
        new TriggerDagRunOperator({ taskId: 'trigger', triggerDagId: 'child', triggerRunId: 'reconnect_child', conf: { gate: true }, waitForCompletion: true, deferrable: true });
      });
      let open = () => {};
      ConfTask.gate = new Promise<void>((resolve) => (open = resolve));
      try {
        const { scheduler, triggerer } = await start(parent);
        let checks = 0;
        triggerer.on('watch:checked', () => void (checks += 1));
        const runId = await runDag(parent);
        await eventually(async () => checks >= 1, 'the run watcher to read once', 20_000);
        const before = checks;
        const { rows } = await sql<{ pid: number }>`
          SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'tsflow-listen'`.execute(t.database.db);
        expect(rows.length).to.be.greaterThan(0);
        // Far sooner than the 30 s safety poll: the reconnect hook asks for a read (a NOTIFY may have been lost).
        await eventually(async () => checks > before, 'a read after the reconnect', 20_000);
        open();
        expect((await runEnded(scheduler, runId, 40_000)).state).to.equal('success');
        expect((await runRow('child', 'reconnect_child')).state).to.equal('success');
      } finally {
        open(); // a failed test must not leave the child's task waiting, or stopping the executor would hang
      }
    });
  });

  describe('ExternalTaskSensor', () => {
    const logicalDate = new Date('2026-05-01T00:00:00Z');

    for (const deferrable of [false, true]) {
      it(`waits for the external task at the same logical date (${deferrable ? 'deferrable' : 'poke'})`, async () => {
        const dagId = `sensor_task_${deferrable}`;
        const waiter = dag({ dagId, schedule: null }, () => {
          new ExternalTaskSensor({ taskId: 'wait', externalDagId: 'child', externalTaskId: 'work', checkExistence: true, deferrable, pokeInterval: 0.2 });
        });
        const { scheduler, triggerer } = await start(waiter);
        const states: string[] = [];
        scheduler.on('ti:state', ({ key, state }) => {
          if (key.dagId === dagId) states.push(state);
        });
        let fired = false;
        triggerer.on('trigger:fired', ({ task }) => void (fired ||= task?.dagId === dagId));
        const at = new Date(logicalDate.getTime() + (deferrable ? 1 : 2) * 86_400_000);
        // An unrelated child run at another date must not count.
        await runDag(child, new Date(at.getTime() + 3_600_000), {});
        const sensorRun = await runDag(waiter, at);
        await eventually(async () => states.includes(deferrable ? 'deferred' : 'running'), 'the sensor to wait', 20_000);
        const childRun = await runDag(child, at, { sleepMs: 1000 });
        expect((await runEnded(scheduler, sensorRun, 40_000)).state).to.equal('success');
        const sensorTi = await taskInstance(t.database, { dagId, runId: sensorRun, taskId: 'wait' });
        const childTi = await taskInstance(t.database, { dagId: 'child', runId: childRun, taskId: 'work' });
        expect((sensorTi.end_date as Date).getTime()).to.be.at.least((childTi.end_date as Date).getTime());
        expect(fired).to.equal(deferrable);
        expect(states.includes('deferred')).to.equal(deferrable);
      });
    }

    it('fails when the external task reaches a failed state (deferrable)', async () => {
      const waiter = dag({ dagId: 'sensor_failed', schedule: null }, () => {
        new ExternalTaskSensor({ taskId: 'wait', externalDagId: 'child', externalTaskIds: ['work'], failedStates: ['failed'], deferrable: true });
      });
      const { scheduler } = await start(waiter);
      const at = new Date(logicalDate.getTime() + 5 * 86_400_000);
      const sensorRun = await runDag(waiter, at);
      await runDag(child, at, { fail: true });
      expect((await runEnded(scheduler, sensorRun, 40_000)).state).to.equal('failed');
      const ti = await taskInstance(t.database, { dagId: 'sensor_failed', runId: sensorRun, taskId: 'wait' });
      expect(ti.error).to.include("task(s) work of DAG 'child' reached a failed state (failed)");
    });

    it('waits for the whole run at the logical date minus executionDelta (deferrable and poke)', async () => {
      const deferred = dag({ dagId: 'sensor_run_defer', schedule: null }, () => {
        new ExternalTaskSensor({ taskId: 'wait', externalDagId: 'child', executionDelta: { hours: 1 }, failedStates: ['failed'], deferrable: true });
      });
      const poking = dag({ dagId: 'sensor_run_poke', schedule: null }, () => {
        new ExternalTaskSensor({ taskId: 'wait', externalDagId: 'child', executionDelta: { hours: 1 }, skippedStates: ['failed'], pokeInterval: 0.2 });
      });
      const { scheduler } = await start(deferred, poking);
      const at = new Date(logicalDate.getTime() + 10 * 86_400_000);
      const hourEarlier = new Date(at.getTime() - 3_600_000);
      const deferredRun = await runDag(deferred, at);
      const pokingRun = await runDag(poking, new Date(at.getTime() + 86_400_000));
      // A failing child run at the sensor's own date must not count: it waits for the run an hour earlier.
      await runDag(child, at, { fail: true });
      await runDag(child, hourEarlier, { sleepMs: 500 });
      expect((await runEnded(scheduler, deferredRun, 40_000)).state).to.equal('success');
      // The poking sensor's run an hour earlier fails: skippedStates skips it.
      await runDag(child, new Date(at.getTime() + 86_400_000 - 3_600_000), { fail: true });
      expect((await runEnded(scheduler, pokingRun, 40_000)).state).to.equal('success');
      expect((await taskInstance(t.database, { dagId: 'sensor_run_poke', runId: pokingRun, taskId: 'wait' })).state).to.equal('skipped');
    });

    it('checkExistence fails at once for an unknown task, naming it', async () => {
      const waiter = dag({ dagId: 'sensor_missing', schedule: null }, () => {
        new ExternalTaskSensor({ taskId: 'wait', externalDagId: 'child', externalTaskId: 'nope', checkExistence: true, deferrable: true });
      });
      const { scheduler } = await start(waiter);
      const runId = await runDag(waiter);
      expect((await runEnded(scheduler, runId, 40_000)).state).to.equal('failed');
      expect((await taskInstance(t.database, { dagId: 'sensor_missing', runId, taskId: 'wait' })).error).to.include("DAG 'child' has no task 'nope'");
    });

    it('refuses contradictory options when the DAG is defined', () => {
      expect(() => dag({ dagId: 'bad_1' }, () => new ExternalTaskSensor({ taskId: 'w', externalDagId: 'child', externalTaskId: 'a', externalTaskIds: ['b'] }))).to.throw(/externalTaskId or externalTaskIds/);
      expect(() => dag({ dagId: 'bad_2' }, () => new ExternalTaskSensor({ taskId: 'w', externalDagId: 'child', allowedStates: ['success'], failedStates: ['success'] }))).to.throw(/both allowedStates and failedStates/);
      expect(() => dag({ dagId: 'bad_3' }, () => new ExternalTaskSensor({ taskId: 'w', externalDagId: 'child', allowedStates: ['upstream_failed'] }))).to.throw(/not one of queued, running, success, failed/);
      expect(() => dag({ dagId: 'bad_4' }, () => new TriggerDagRunOperator({ taskId: 't', triggerDagId: 'child', allowedStates: ['succeeded' as 'success'] }))).to.throw(/'succeeded'/);
    });
  });
});
