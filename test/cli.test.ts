import { expect } from 'chai';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { startQueuedRun } from '../src/db/scheduling.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { createRun, FIXTURE_DAGS, loadFixtureDags, queue, startScheduler } from './support/rig.ts';

describe('the tsflow command', () => {
  let t: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: FIXTURE_DAGS };
  });
  after(() => t.drop());
  afterEach(stopAll);

  const runCount = async () => Number((await t.database.db.selectFrom('dag_run').select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  it('runs the README demo on its own database and exits 0 when the run succeeds', async function () {
    this.timeout(90_000);
    const demo = await createTestDatabase();
    try {
      const result = await tsflow(['standalone', '--dags-folder', 'examples/dags', '--run', 'deferrable_demo'], { TSFLOW_DATABASE_URL: demo.url });
      expect(result.code, result.stderr).to.equal(0);
      // The sensor's window ends 3 s after the run's logical date: on a loaded machine the first task
      // can take that long to get a worker, and the sensor then succeeds without deferring.
      expect(result.stdout).to.match(/deferrable_demo\.wait_for_window\s+(deferred|success)/);
      expect(result.stdout).to.match(/deferrable_demo\.wait_then_report\s+deferred/);
      expect(result.stdout).to.match(/deferrable_demo\.wait_then_report\s+scheduled \(trigger fired\)/);
      expect(result.stdout).to.contain('finished: success');
      const xcom = await demo.database.db.selectFrom('xcom').select('value').where('task_id', '=', 'wait_then_report').executeTakeFirstOrThrow();
      expect(xcom.value).to.have.property('waitedMs').that.is.at.least(1900);
    } finally {
      await demo.drop();
    }
  });

  it('names an unknown DAG, lists the known ones, and creates nothing', async () => {
    const before = await runCount();
    const result = await tsflow(['dags', 'trigger', 'no_such_dag'], env);
    expect(result.code).to.equal(1);
    expect(errorLines(result)).to.have.length(1);
    expect(errorLines(result)[0]).to.contain("DAG 'no_such_dag' not found").and.contain('defer_dag');
    expect(await runCount()).to.equal(before);
  });

  it('names an unknown task id', async () => {
    const result = await tsflow(['tasks', 'run', 'defer_dag', 'no_such_task', 'r1'], env);
    expect(result.code).to.equal(1);
    expect(errorLines(result)[0]).to.contain("DAG 'defer_dag' has no task 'no_such_task'").and.contain('defer');
  });

  it('refuses malformed --conf with a usage error and creates no run', async () => {
    const before = await runCount();
    const result = await tsflow(['dags', 'trigger', 'defer_dag', '--conf', '{"a": 1'], env);
    expect(result.code).to.equal(2);
    expect(errorLines(result)[0]).to.contain('--conf is not valid JSON');
    const notObject = await tsflow(['dags', 'trigger', 'defer_dag', '--conf', '[1, 2]'], env);
    expect(notObject.code).to.equal(2);
    expect(errorLines(notObject)[0]).to.contain('--conf must be a JSON object');
    expect(await runCount()).to.equal(before);
  });

  it('reports a DAG file that throws on import, naming the file', async () => {
    const list = await tsflow(['dags', 'list', '--dags-folder', 'test/fixtures/broken-dags'], env);
    expect(list.code).to.equal(1);
    expect(list.stdout).to.contain('fine_dag');
    expect(errorLines(list)[0]).to.contain('broken.ts').and.contain('cannot reach the config service');
    const trigger = await tsflow(['dags', 'trigger', 'never_defined', '--dags-folder', 'test/fixtures/broken-dags'], env);
    expect(trigger.code).to.equal(1);
    expect(errorLines(trigger)[0]).to.contain("DAG 'never_defined' not found").and.contain('broken.ts');
  });

  it('explains an unreachable database in one line', async () => {
    const result = await tsflow(['tasks', 'states', 'defer_dag', 'r1'], { TSFLOW_DATABASE_URL: 'postgres://tsflow:secret@127.0.0.1:1/tsflow' });
    expect(result.code).to.equal(1);
    const [line] = errorLines(result);
    expect(line).to.contain('cannot reach the database at postgres://tsflow:***@127.0.0.1:1/tsflow').and.contain('TSFLOW_DATABASE_URL');
    expect(line).not.to.contain('secret');
    expect(result.stderr).not.to.match(/^\s+at /m);
  });

  it('refuses to start a daemon on an unmigrated database, saying what to run', async () => {
    const empty = await createEmptyDatabase();
    try {
      const result = await tsflow(['triggerer'], { TSFLOW_DATABASE_URL: empty.url });
      expect(result.code).to.equal(1);
      expect(errorLines(result)[0]).to.contain('is not migrated: run `tsflow db migrate` first');
      const migrate = await tsflow(['db', 'migrate'], { TSFLOW_DATABASE_URL: empty.url });
      expect(migrate.code, migrate.stderr).to.equal(0);
      expect(migrate.stdout).to.contain('0001_initial_schema');
    } finally {
      await empty.drop();
    }
  });

  it('prints task states as JSON', async () => {
    await upsertDags(t.database.db, [{ dagId: 'defer_dag', fileloc: '' }]);
    await createDagRun(t.database.db, { dagId: 'defer_dag', runId: 'json_run', conf: {}, logicalDate: new Date() });
    await startQueuedRun(t.database.db, 'defer_dag', 'json_run', [{ taskId: 'defer', maxTries: 0, priorityWeight: 1, queue: 'default' }], { checkLimits: false });
    const result = await tsflow(['tasks', 'states', 'defer_dag', 'json_run', '--json'], env);
    expect(result.code, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout)).to.deep.equal([{ taskId: 'defer', mapIndex: -1, state: null, tryNumber: 0, nextMethod: null, hostname: null }]);
  });

  it('answers an unknown command with usage and exit code 2', async () => {
    const result = await tsflow(['frobnicate'], env);
    expect(result.code).to.equal(2);
    expect(errorLines(result)[0]).to.contain("unknown command 'frobnicate'");
  });

  it('refuses an unknown executor before touching the database, naming the choices', async () => {
    const jobs = async () => Number((await t.database.db.selectFrom('job').select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const before = await jobs();
    for (const args of [['scheduler', '--executor', 'celery'], ['standalone', '--executor', 'celery']]) {
      const result = await tsflow(args, env);
      expect(result.code).to.equal(2);
      expect(errorLines(result)[0]).to.contain("unknown executor 'celery': choose one of local, sequential");
    }
    const fromEnv = await tsflow(['scheduler'], { ...env, TSFLOW_EXECUTOR: 'kubernetes' });
    expect(fromEnv.code).to.equal(2);
    expect(errorLines(fromEnv)[0]).to.contain("unknown executor 'kubernetes'");
    expect(await jobs()).to.equal(before);
  });

  it('dags trigger --wait blocks until the run ends and exits 1 when it failed, 0 when it succeeded', async function () {
    this.timeout(60_000);
    await startScheduler(t.database, await loadFixtureDags());
    const failed = await tsflow(['dags', 'trigger', 'fail_dag', '--run-id', 'wait_failed', '--wait'], env);
    expect(failed.code, failed.stderr).to.equal(1);
    expect(failed.stdout).to.contain("run 'wait_failed' of fail_dag finished: failed");
    const ok = await tsflow(['dags', 'trigger', 'ok_dag', '--run-id', 'wait_ok', '--wait'], env);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.contain("run 'wait_ok' of ok_dag finished: success");
    const state = await tsflow(['dags', 'state', 'fail_dag', 'wait_failed'], env);
    expect(state.stdout.trim()).to.equal('failed');
  });

  it('tasks logs prints a try\'s log, with the error\'s stack, the latest try by default', async () => {
    const bag = await loadFixtureDags();
    await createRun(t.database, bag.getDag('retry_dag'), 'logs_run');
    await queue(t.database, { dagId: 'retry_dag', runId: 'logs_run', taskId: 'flaky' });
    const run = await tsflow(['tasks', 'run', 'retry_dag', 'flaky', 'logs_run'], env);
    expect(run.stdout, run.stderr).to.contain('try 1: up_for_retry');

    const logs = await tsflow(['tasks', 'logs', 'retry_dag', 'flaky', 'logs_run'], env);
    expect(logs.code, logs.stderr).to.equal(0);
    expect(logs.stdout).to.match(/attempt=1\.log \(try 1 of 1\)/);
    expect(logs.stdout).to.match(/INFO {2}\[\d+\] task started/);
    expect(logs.stdout).to.contain('flaky task starting {"tryNumber":1}');
    expect(logs.stdout).to.match(/ERROR \[\d+\] task failed\n {4}Error: flaky failure on the first try\n {8}at FailsOnce\.execute/);
    expect(logs.stdout).to.contain('task finished {"state":"up_for_retry","error":"Error: flaky failure on the first try"}');

    const json = await tsflow(['tasks', 'logs', 'retry_dag', 'flaky', 'logs_run', '--try', '1', '--json'], env);
    const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).to.deep.equal(['task started', 'flaky task starting', 'task failed', 'task finished']);

    const missing = await tsflow(['tasks', 'logs', 'retry_dag', 'flaky', 'logs_run', '--try', '2'], env);
    expect(missing.code).to.equal(1);
    expect(errorLines(missing)[0]).to.contain('has no log for try 2; tries with logs: 1');
    const unknown = await tsflow(['tasks', 'logs', 'retry_dag', 'flaky', 'no_such_run'], env);
    expect(unknown.code).to.equal(1);
    expect(errorLines(unknown)[0]).to.contain("no logs for retry_dag.flaky in run 'no_such_run'");
  });
});
