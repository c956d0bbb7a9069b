import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { DagSpec, serializeDag } from '../src/dag-bag/serialized-dag.ts';
import { clearTaskInstances } from '../src/db/clear.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { enqueueScheduled, startQueuedRun } from '../src/db/scheduling.ts';
import { GraphileExecutor } from '../src/executors/graphile-executor.ts';
import { evaluateDependencies } from '../src/scheduler/dependency-evaluator.ts';
import { taskInstanceSpecs } from '../src/scheduler/task-mapping.ts';
import { BaseOperator, BashOperator, dag, task, XComArg, type BaseOperatorOptions, type Dag, type JsonObject, type JsonValue, type TaskContext } from '../src/sdk/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { runThroughScheduler } from './support/dag-runner.ts';
import { workerStarted } from './support/graphile-rig.ts';
import { spawnDaemon, stopProcesses } from './support/processes.ts';
import { createRun, FIXTURES, localExecutor, runEnded, startScheduler, startTriggerer } from './support/rig.ts';
import { ControlledTrigger } from './fixtures/triggers/test-triggers.ts';

/** Doubles its item; every tenth item defers first (to a trigger that fires at once) and doubles on resume. */
class MaybeDefer extends BaseOperator<number> {
  readonly item: number;

  constructor(options: BaseOperatorOptions & { item: number }) {
    super(options);
    this.item = options.item;
  }

  override execute(): number {
    if (this.item % 10 === 0) this.defer({ trigger: new ControlledTrigger({ mode: 'fire', afterMs: 20 }), kwargs: { item: this.item } });
    return this.item * 2;
  }

  executeComplete(_context: TaskContext, _event: JsonValue | undefined, kwargs: JsonObject): number {
    return (kwargs['item'] as number) * 2;
  }
}

describe('dynamic task mapping, end to end through the scheduler (real PostgreSQL)', function () {
  this.timeout(120_000);
  let t: TestDatabase;
  let dagNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(() => stopAll());

  const returnValue = async (runId: string, dagId: string, taskId: string): Promise<JsonValue | undefined> => {
    const row = await t.database.db.selectFrom('xcom').select('value')
      .where('run_id', '=', runId).where('dag_id', '=', dagId).where('task_id', '=', taskId).where('key', '=', 'return_value').where('map_index', '=', -1)
      .executeTakeFirst();
    return row?.value;
  };
  const taskInstances = (runId: string, dagId: string, taskId: string) =>
    t.database.db.selectFrom('task_instance').selectAll().where('run_id', '=', runId).where('dag_id', '=', dagId).where('task_id', '=', taskId).orderBy('map_index').execute();

  it('maps over 100 items of an upstream XCom; 10 map indexes defer and resume on their own; downstream gets the 100 results in order', async () => {
    const produce = task({ taskId: 'produce' }, (): number[] => Array.from({ length: 100 }, (_, i) => i));
    const collect = task({ taskId: 'collect' }, (_ctx: TaskContext, results: number[]) => results);
    const d: Dag = dag({ dagId: `mapping_defer_${++dagNo}` }, () => {
      const work = MaybeDefer.partial({ taskId: 'work' }).expand({ item: produce() });
      collect(new XComArg<number[]>(work));
    });
    const deferred = new Set<number>();
    const { state, runId } = await runThroughScheduler(t, d, {
      timeoutMs: 100_000,
      onSeen: (line, key) => {
        if (line.task === 'work' && line.state === 'deferred') deferred.add(key.mapIndex ?? -1);
      },
    });
    expect(state).to.equal('success');
    const rows = await taskInstances(runId, d.dagId, 'work');
    expect(rows.map((r) => r.map_index)).to.deep.equal(Array.from({ length: 100 }, (_, i) => i));
    expect(rows.every((r) => r.state === 'success' && r.try_number === 1)).to.equal(true);
    expect([...deferred].sort((a, b) => a - b)).to.deep.equal([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(await returnValue(runId, d.dagId, 'collect')).to.deep.equal(Array.from({ length: 100 }, (_, i) => i * 2));
  });

  it('expands literal lists when the run starts: operators, TaskFlow functions, and the product of several lists', async () => {
    const scale = task({ taskId: 'scale' }, (_ctx: TaskContext, args: { x: number; factor: number }) => args.x * args.factor);
    const pair = task({ taskId: 'pair' }, (_ctx: TaskContext, args: { a: number; b: string }) => `${args.a}${args.b}`);
    const collect = task({ taskId: 'collect' }, (_ctx: TaskContext, echo: string[], scaled: number[], pairs: string[]) => ({ echo, scaled, pairs }));
    const d: Dag = dag({ dagId: `mapping_literal_${++dagNo}` }, () => {
      const echo = BashOperator.partial({ taskId: 'echo' }).expand({ bashCommand: ['echo a', 'echo b', 'echo c'] });
      collect(new XComArg<string[]>(echo), scale.partial({ factor: 10 }).expand({ x: [1, 2, 3] }), pair.expand({ a: [1, 2], b: ['x', 'y'] }));
    });
    const spec = new DagSpec(serializeDag(d, ''));
    expect(taskInstanceSpecs(spec).filter((s) => s.taskId === 'echo').map((s) => s.mapIndex), 'created with the run').to.deep.equal([0, 1, 2]);
    expect(spec.tasks.get('echo')?.operator).to.equal('BashOperator');
    const { state, runId } = await runThroughScheduler(t, d, { timeoutMs: 60_000 });
    expect(state).to.equal('success');
    expect(await returnValue(runId, d.dagId, 'collect')).to.deep.equal({ echo: ['a', 'b', 'c'], scaled: [10, 20, 30], pairs: ['1x', '1y', '2x', '2y'] });
  });

  it('expandKwargs: one map index per object, from a literal list or an upstream XCom', async () => {
    const add = task({ taskId: 'add' }, (_ctx: TaskContext, args: { x: number; y: number }) => args.x + args.y);
    const pairs = task({ taskId: 'pairs' }, () => [{ x: 10, y: 1 }, { x: 20, y: 2 }]);
    const collect = task({ taskId: 'collect' }, (_ctx: TaskContext, literal: number[], fromXcom: number[]) => ({ literal, fromXcom }));
    const d: Dag = dag({ dagId: `mapping_kwargs_${++dagNo}` }, () => {
      collect(add.expandKwargs([{ x: 1, y: 2 }, { x: 3, y: 4 }]), add.expandKwargs(pairs()));
    });
    const { state, runId } = await runThroughScheduler(t, d, { timeoutMs: 60_000 });
    expect(state).to.equal('success');
    expect(await returnValue(runId, d.dagId, 'collect')).to.deep.equal({ literal: [3, 7], fromXcom: [11, 22] });
  });

  const double = task({ taskId: 'double' }, (_ctx: TaskContext, args: { x: number }) => args.x * 2);

  it('a zero-length expansion skips the mapped task, and so its all_success downstream', async () => {
    const empty = task({ taskId: 'empty' }, (): number[] => []);
    const after = task({ taskId: 'after' }, (_ctx: TaskContext, values: number[]) => values.length);
    const d: Dag = dag({ dagId: `mapping_empty_${++dagNo}` }, () => {
      after.override({ taskId: 'after_literal' })(double.override({ taskId: 'literal' }).expand({ x: [] }));
      after.override({ taskId: 'after_xcom' })(double.override({ taskId: 'from_xcom' }).expand({ x: empty() }));
    });
    const { state, runId } = await runThroughScheduler(t, d, { timeoutMs: 60_000 });
    expect(state).to.equal('success');
    for (const taskId of ['literal', 'from_xcom', 'after_literal', 'after_xcom']) {
      const rows = await taskInstances(runId, d.dagId, taskId);
      expect(rows.map((r) => [r.map_index, r.state]), taskId).to.deep.equal([[-1, 'skipped']]);
    }
  });

  it('an upstream XCom that is not a list fails the mapped task, saying why', async () => {
    const notList = task({ taskId: 'not_list' }, () => 42);
    const bad: Dag = dag({ dagId: `mapping_bad_${++dagNo}` }, () => {
      double.override({ taskId: 'mapped' }).expand({ x: notList() as unknown as XComArg<number[]> });
    });
    const failed = await runThroughScheduler(t, bad, { timeoutMs: 60_000 });
    expect(failed.state).to.equal('failed');
    const [row] = await taskInstances(failed.runId, bad.dagId, 'mapped');
    expect(row?.state).to.equal('failed');
    expect(row?.error).to.match(/XCom 'return_value' of task 'not_list', which is not a list: 42/);
  });

  it('maxActiveTisPerDag caps how many map indexes are queued or running at once', async () => {
    const d: Dag = dag({ dagId: `mapping_limit_${++dagNo}` }, () => {
      MaybeDefer.partial({ taskId: 'limited', maxActiveTisPerDag: 2 }).expand({ item: [1, 2, 3, 4, 5, 6] });
    });
    const spec = new DagSpec(serializeDag(d, ''));
    await upsertDags(t.database.db, [{ dagId: d.dagId, fileloc: '' }]);
    await createDagRun(t.database.db, { dagId: d.dagId, runId: 'r1', conf: {}, logicalDate: new Date() });
    await createDagRun(t.database.db, { dagId: d.dagId, runId: 'r2', conf: {}, logicalDate: new Date(Date.now() + 1000) });
    for (const runId of ['r1', 'r2']) expect(await startQueuedRun(t.database.db, d.dagId, runId, taskInstanceSpecs(spec), { checkLimits: false })).to.equal(true);
    await evaluateDependencies(t.database.db, () => spec);
    const first = await enqueueScheduled(t.database.db, 1, null);
    expect(first, 'two map indexes, across both runs').to.have.length(2);
    expect(await enqueueScheduled(t.database.db, 1, null), 'none while two are queued').to.have.length(0);
    await t.database.db.updateTable('task_instance').set({ state: 'success' })
      .where('dag_id', '=', d.dagId).where('run_id', '=', first[0]!.run_id).where('map_index', '=', first[0]!.map_index).execute();
    expect(await enqueueScheduled(t.database.db, 1, null), 'one more once one finished').to.have.length(1);
    const states = await t.database.db.selectFrom('task_instance').select(['state']).where('dag_id', '=', d.dagId).execute();
    expect(states.filter((s) => s.state === 'queued')).to.have.length(2);
  });

  it('the DagBag keeps a mapped task as one task of the DAG, and rejects a value given to both partial and expand', () => {
    const d: Dag = dag({ dagId: `mapping_shape_${++dagNo}` }, () => {
      BashOperator.partial({ taskId: 'echo' }).expand({ bashCommand: ['echo 1'] });
    });
    expect([...DagBag.of([d]).getDag(d.dagId).tasks.keys()]).to.deep.equal(['echo']);
    expect(() =>
      dag({ dagId: `mapping_both_${++dagNo}` }, () => {
        BashOperator.partial({ taskId: 'echo', bashCommand: 'echo 1' }).expand({ bashCommand: ['echo 2'] });
      }),
    ).to.throw(/given both to partial\(\) and to expand\(\)/);
  });
});

describe('dynamic task mapping in LocalExecutor worker processes (real PostgreSQL)', function () {
  this.timeout(180_000);
  const folder = `${FIXTURES}mapping-dags`;
  let t: TestDatabase;
  let bag: DagBag;
  let d: Dag;

  before(async () => {
    t = await createTestDatabase();
    bag = await DagBag.load(folder);
    d = bag.getDag('mapping_workers');
  });
  after(() => t.drop());
  afterEach(() => stopAll());

  const start = async () => {
    const executor = localExecutor(t.database, { parallelism: 4, worker: { dagsFolder: folder } });
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    await startTriggerer(t.database);
    return scheduler;
  };
  const squares = (runId: string) =>
    t.database.db.selectFrom('task_instance').selectAll().where('dag_id', '=', d.dagId).where('run_id', '=', runId).where('task_id', '=', 'square').orderBy('map_index').execute();
  const total = async (runId: string) =>
    (await t.database.db.selectFrom('xcom').select('value').where('dag_id', '=', d.dagId).where('run_id', '=', runId).where('task_id', '=', 'total').executeTakeFirst())?.value;

  it('each map index defers and resumes in a worker process as its own task instance; maxActiveTisPerDag holds', async () => {
    const scheduler = await start();
    const ended = runEnded(scheduler, 'workers', 150_000);
    await createRun(t.database, d, 'workers', { items: [1, 2, 3, 4, 5, 6, 7, 8], deferEvery: 4, sleepMs: 150 });
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    expect(await total('workers')).to.deep.equal([1, 4, 9, 16, 25, 36, 49, 64]);
    const rows = await squares('workers');
    expect(rows.map((r) => [r.map_index, r.state, r.try_number])).to.deep.equal(Array.from({ length: 8 }, (_, i) => [i, 'success', 1]));
    // The limit counts queued and running task instances; a try's first run starts at start_date.
    // Without deferrals in between, no three runs of `square` overlap.
    const plain = rows.filter((r) => (r.map_index + 1) % 4 !== 0).map((r) => [r.start_date!.getTime(), r.end_date!.getTime()] as const);
    for (const [s] of plain) expect(plain.filter(([a, b]) => a <= s && s < b).length, 'running at once').to.be.at.most(2);
  });

  it('clearing the run expands the mapped task again over its upstream\'s new list', async () => {
    const scheduler = await start();
    let ended = runEnded(scheduler, 'cleared', 150_000);
    await createRun(t.database, d, 'cleared', { items: [1, 2, 3] });
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    expect(await total('cleared')).to.deep.equal([1, 4, 9]);
    await t.database.db.updateTable('dag_run').set({ conf: JSON.stringify({ items: [5, 6, 7, 8, 9] }) }).where('dag_id', '=', d.dagId).where('run_id', '=', 'cleared').execute();
    ended = runEnded(scheduler, 'cleared', 150_000);
    const cleared = await clearTaskInstances(t.database.db, { dagId: d.dagId, runId: 'cleared', taskIds: [], retries: new Map() });
    expect(cleared.filter((c) => c.taskId === 'square').map((c) => c.mapIndex)).to.deep.equal([0, 1, 2]);
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    expect((await squares('cleared')).map((r) => r.map_index)).to.deep.equal([0, 1, 2, 3, 4]);
    expect(await total('cleared')).to.deep.equal([25, 36, 49, 64, 81]);
  });
});

describe('dynamic task mapping on tsflow workers (graphile executor)', function () {
  this.timeout(180_000);
  const folder = `${FIXTURES}mapping-dags`;
  let t: TestDatabase;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(async () => {
    await stopProcesses();
    await stopAll();
  });

  it('each map index is a graphile-worker job of its own (job key task[i]#try), and defers and resumes on its own', async () => {
    const worker = spawnDaemon(['worker', '--queues', 'default', '--heartbeat-interval', '0.3', '--poll-interval', '0.5', '--dags-folder', folder], {
      TSFLOW_DATABASE_URL: t.url,
      TSFLOW_HOSTNAME: 'host-map',
    });
    await workerStarted(t, worker, 'host-map', 90_000);
    const bag = await DagBag.load(folder);
    const d = bag.getDag('mapping_workers');
    const executor = new GraphileExecutor({ parallelism: 50, database: t.database, logger: silentLogger() });
    const { scheduler } = await startScheduler(t.database, bag, { heartbeatIntervalMs: 300, healthCheckThresholdMs: 15_000, pollIntervalMs: 1000 }, executor);
    await startTriggerer(t.database);
    const ended = runEnded(scheduler, 'graphile', 150_000);
    await createRun(t.database, d, 'graphile', { items: [1, 2, 3, 4, 5, 6], deferEvery: 3 });
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    const total = await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', 'graphile').where('task_id', '=', 'total').executeTakeFirst();
    expect(total?.value).to.deep.equal([1, 4, 9, 16, 25, 36]);
    const rows = await t.database.db.selectFrom('task_instance').selectAll().where('run_id', '=', 'graphile').where('task_id', '=', 'square').orderBy('map_index').execute();
    expect(rows.map((r) => [r.map_index, r.state, r.try_number, r.worker_job_id !== null])).to.deep.equal(Array.from({ length: 6 }, (_, i) => [i, 'success', 1, true]));
    await stopAll(); // the scheduler and triggerer first, then the worker, cleanly
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.stderr()).to.equal(0);
  });
});
