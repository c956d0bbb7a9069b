import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { dag, FailTask, task, type Dag, type TaskContext } from '../src/sdk/index.ts';
import { tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { indexOf, runThroughScheduler } from './support/dag-runner.ts';
import { createRun, FIXTURES, localExecutor, runEnded, startScheduler } from './support/rig.ts';

describe('TaskFlow tasks, end to end through the scheduler (real PostgreSQL)', function () {
  this.timeout(60_000);
  let t: TestDatabase;
  let dagNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(() => stopAll());

  const xcoms = async (runId: string, dagId: string): Promise<Record<string, unknown>> => {
    const rows = await t.database.db.selectFrom('xcom').select(['task_id', 'key', 'value']).where('run_id', '=', runId).where('dag_id', '=', dagId).execute();
    return Object.fromEntries(rows.map((r) => [`${r.task_id}:${r.key}`, r.value]));
  };

  it('runs the typed ETL fixture (loaded from its file): values pass from task to task, keys of multipleOutputs too', async () => {
    const bag = await DagBag.load(`${FIXTURES}taskflow-dags`);
    const etl = bag.getDag('taskflow_etl');
    const { state, runId, seen } = await runThroughScheduler(t, etl, { timeoutMs: 40_000 });
    expect(state, JSON.stringify(seen)).to.equal('success');
    const values = await xcoms(runId, etl.dagId);
    expect(values['extract:return_value']).to.deep.include({ orders: [3, 4, 5] });
    expect(values['transform:return_value'], '(3 + 4 + 5) * 2').to.equal(24);
    expect(values['load:return_value']).to.equal('total: 24');
    expect(values['report.stats:count'], 'multipleOutputs pushes each key').to.equal(3);
    expect(values['report.stats:name']).to.equal('orders');
    expect(values['report.stats:return_value']).to.deep.equal({ count: 3, name: 'orders' });
    expect(values['report.load:return_value'], 'a key fed to another task').to.equal('orders: 3');
    expect(values['report.echo:return_value'], 'the Bash task in the group').to.equal('done');
    expect(indexOf(seen, 'transform', 'running')).to.be.greaterThan(indexOf(seen, 'extract', 'success'));
    expect(indexOf(seen, 'report.echo', 'running')).to.be.greaterThan(indexOf(seen, 'load', 'success'));
  });

  it('runs the same DAG file in LocalExecutor worker processes', async () => {
    const folder = `${FIXTURES}taskflow-dags`;
    const bag = await DagBag.load(folder);
    const etl = bag.getDag('taskflow_etl');
    const executor = localExecutor(t.database, { parallelism: 2, worker: { dagsFolder: folder } });
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const ended = runEnded(scheduler, 'in_workers', 40_000);
    await createRun(t.database, etl, 'in_workers');
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    const values = await xcoms('in_workers', etl.dagId);
    expect(values['load:return_value']).to.equal('total: 24');
    expect(values['report.load:return_value']).to.equal('orders: 3');
    expect(values['report.echo:return_value']).to.equal('done');
  });

  it('task.sensor pokes until done and hands its xcomValue downstream; a failed producer stops its consumers', async () => {
    let pokes = 0;
    const waitForRows = task.sensor({ taskId: 'wait_for_rows', pokeInterval: 0.05, timeout: 30 }, (_ctx: TaskContext, atLeast: number) => {
      pokes += 1;
      return { isDone: pokes >= atLeast, xcomValue: pokes * 10 };
    });
    const double = task({ taskId: 'double' }, (_ctx: TaskContext, rows: number | undefined) => (rows ?? 0) * 2);
    const broken = task({ taskId: 'broken' }, (): number => {
      throw new FailTask('no data');
    });
    const d: Dag = dag({ dagId: `taskflow_sensor_${++dagNo}` }, () => {
      double(waitForRows(3));
      double(broken());
    });
    const { state, runId, seen } = await runThroughScheduler(t, d, { timeoutMs: 40_000 });
    expect(state).to.equal('failed');
    const values = await xcoms(runId, d.dagId);
    expect(values['wait_for_rows:return_value']).to.equal(30);
    expect(values['double:return_value']).to.equal(60);
    expect(seen.filter((s) => s.task === 'double__1').map((s) => s.state)).to.deep.equal(['upstream_failed']);
  });

  it('`tsflow dags test` runs the TaskFlow example DAG, printing each task log', async () => {
    const logs = await mkdtemp(path.join(os.tmpdir(), 'tsflow-taskflow-demo-'));
    try {
      const result = await tsflow(['dags', 'test', 'taskflow_demo', '--dags-folder', 'examples/dags'], { TSFLOW_DATABASE_URL: t.url, TSFLOW_LOGS_FOLDER: logs });
      expect(result.code, result.stderr + result.stdout).to.equal(0);
      expect(result.stdout).to.match(/taskflow_demo\.report\.load\s+success/);
      expect(result.stdout).to.contain('loaded 49.75 EUR');
      expect(result.stdout).to.contain('archiving run');
      const archived = await t.database.db.selectFrom('xcom').select('value').where('dag_id', '=', 'taskflow_demo').where('task_id', '=', 'archive').executeTakeFirstOrThrow();
      expect(archived.value).to.match(/^archived-\d{8}$/);
    } finally {
      await rm(logs, { recursive: true, force: true });
    }
  });
});
