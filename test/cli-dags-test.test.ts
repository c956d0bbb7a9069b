import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { expect } from 'chai';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { startQueuedRun } from '../src/db/scheduling.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { FIXTURES } from './support/rig.ts';

const CLI_DAGS = path.join(FIXTURES, 'cli-test-dags');

describe('tsflow dags test', () => {
  let t: TestDatabase;
  let env: Record<string, string>;
  let logs: string;

  before(async () => {
    t = await createTestDatabase();
    logs = await mkdtemp(path.join(os.tmpdir(), 'tsflow-dags-test-'));
    env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: CLI_DAGS, TSFLOW_LOGS_FOLDER: logs };
  });
  after(async () => {
    await t.drop();
    await rm(logs, { recursive: true, force: true });
  });

  it('runs the README demo DAG to success in one process, deferrals included, and prints each task log', async function () {
    this.timeout(60_000);
    const started = Date.now();
    const result = await tsflow(['dags', 'test', 'deferrable_demo', '--dags-folder', 'examples/dags'], env);
    expect(result.code, result.stderr + result.stdout).to.equal(0);
    expect(Date.now() - started, 'a 3 s sensor and a 2 s deferral, plus start-up').to.be.below(30_000);
    // The sensor's window ends 3 s after the run's logical date: on a loaded machine the first task
    // can take that long to start, and the sensor then succeeds without deferring.
    expect(result.stdout).to.match(/deferrable_demo\.wait_for_window\s+(deferred|success)/);
    expect(result.stdout).to.match(/deferrable_demo\.wait_then_report\s+scheduled \(trigger fired\)/);
    expect(result.stdout).to.match(/deferrable_demo\.wait_then_report\s+success/);
    expect(result.stdout).to.contain('--- log of plan_batch, try 1:').and.contain('planned a batch');
    expect(result.stdout).to.contain('finished: success');
    const run = await t.database.db.selectFrom('dag_run').selectAll().where('dag_id', '=', 'deferrable_demo').executeTakeFirstOrThrow();
    expect(run.run_id).to.match(/^manual__\d{4}-\d\d-\d\dT/);
    expect(run.state).to.equal('success');
    expect(await t.database.db.selectFrom('job').select('state').where('state', '=', 'running').execute(), 'no daemon left registered as running').to.have.length(0);
  });

  it('runs a given logical date with its conf; the task sees them', async function () {
    this.timeout(60_000);
    const result = await tsflow(['dags', 'test', 'report_dag', '2026-05-01T00:00:00Z', '--conf', '{"limit": 7}'], env);
    expect(result.code, result.stderr + result.stdout).to.equal(0);
    expect(result.stdout).to.contain("run 'manual__2026-05-01T00:00:00+00:00'");
    const xcom = await t.database.db.selectFrom('xcom').select('value').where('dag_id', '=', 'report_dag').where('key', '=', 'return_value').executeTakeFirstOrThrow();
    expect(xcom.value).to.deep.include({ runType: 'manual', ds: '2026-05-01', ts: '2026-05-01T00:00:00+00:00', params: { limit: 7 } });
  });

  it('exits 1 when the run fails, after printing the failing task log', async function () {
    this.timeout(60_000);
    const result = await tsflow(['dags', 'test', 'failing_dag'], env);
    expect(result.code).to.equal(1);
    expect(result.stdout).to.match(/failing_dag\.boom\s+failed/);
    expect(result.stdout).to.contain('about to fail').and.contain('boom: this task always fails');
    expect(result.stdout).to.contain('finished: failed');
  });

  it("never fails another DAG's task that it finds scheduled in a shared database", async function () {
    this.timeout(60_000);
    await upsertDags(t.database.db, [{ dagId: 'report_dag', fileloc: '' }]);
    await createDagRun(t.database.db, { dagId: 'report_dag', runId: 'deployment_run', conf: {}, logicalDate: new Date() });
    await startQueuedRun(t.database.db, 'report_dag', 'deployment_run', [{ taskId: 'report', maxTries: 0, priorityWeight: 1, queue: 'default' }]);
    await t.database.db.updateTable('task_instance').set({ state: 'scheduled' }).where('run_id', '=', 'deployment_run').execute();
    const result = await tsflow(['dags', 'test', 'short_defer_dag'], env);
    expect(result.code, result.stderr + result.stdout).to.equal(0);
    const other = await t.database.db.selectFrom('task_instance').select(['state', 'error']).where('run_id', '=', 'deployment_run').executeTakeFirstOrThrow();
    expect(other.state, other.error ?? '').to.be.oneOf(['scheduled', 'queued', 'success']);
  });

  it('refuses a bad logical date or invalid params before writing anything', async () => {
    const count = async () => (await t.database.db.selectFrom('dag_run').select('run_id').execute()).length;
    const before = await count();
    const date = await tsflow(['dags', 'test', 'report_dag', 'yesterday'], env);
    expect(date.code).to.equal(2);
    expect(errorLines(date)[0]).to.contain("LOGICAL_DATE 'yesterday' is not a date");
    const params = await tsflow(['dags', 'test', 'report_dag', '--conf', '{"limit": "many"}'], env);
    expect(params.code).to.equal(2);
    expect(errorLines(params)[0]).to.contain("param 'limit'");
    expect(await count()).to.equal(before);
  });
});
