import path from 'node:path';
import { expect } from 'chai';
import { DateTime } from 'luxon';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { FIXTURES } from './support/rig.ts';

const CLI_DAGS = path.join(FIXTURES, 'cli-test-dags');
const TABLES = ['dag', 'dag_run', 'task_instance', 'xcom', 'trigger', 'job'] as const;

describe('tsflow tasks test', () => {
  let t: TestDatabase;
  let env: Record<string, string>;
  let initial: Record<string, number>;

  const counts = async () => {
    const out: Record<string, number> = {};
    for (const table of TABLES) out[table] = Number((await t.database.db.selectFrom(table).select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    return out;
  };

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: CLI_DAGS };
    initial = await counts();
  });
  after(() => t.drop());

  it('runs a plain task, printing its log, its XCom pushes and its return value; xcomPull finds nothing', async () => {
    const result = await tsflow(['tasks', 'test', 'report_dag', 'report', '2026-07-04T12:00:00Z', '--conf', '{"limit": 2}'], env);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.contain('reporting the context');
    expect(result.stdout).to.contain('xcom push (not stored): extra = {"pushed":true}');
    const returned = /success; returned (.*)$/m.exec(result.stdout)?.[1] as string;
    expect(JSON.parse(returned)).to.deep.equal({
      runType: 'manual',
      ds: '2026-07-04',
      ts: '2026-07-04T12:00:00+00:00',
      dataIntervalStart: '2026-07-04T12:00:00.000Z',
      dataIntervalEnd: '2026-07-04T12:00:00.000Z',
      params: { limit: 2 },
      upstream: null,
    });
  });

  it('runs a deferring operator and a deferrable sensor, their triggers inline, and resumes them with the event', async function () {
    this.timeout(30_000);
    const operator = await tsflow(['tasks', 'test', 'short_defer_dag', 'short_defer'], env);
    expect(operator.code, operator.stderr).to.equal(0);
    expect(operator.stdout).to.contain('deferred: running the trigger in this process').and.contain('tsflow.triggers.DateTimeTrigger');
    expect(operator.stdout).to.contain('resumed after the trigger fired');
    expect(operator.stdout).to.contain('success; returned {"fired":true,"note":"kept"}');

    // The sensor waits until 200 ms after the logical date: a logical date 6 s ahead makes it defer,
    // however slowly the command starts on a loaded machine.
    const logicalDate = DateTime.utc().plus({ seconds: 6 }).toISO();
    const started = Date.now();
    const sensor = await tsflow(['tasks', 'test', 'short_defer_dag', 'short_sensor', logicalDate], env);
    expect(sensor.code, sensor.stderr).to.equal(0);
    expect(sensor.stdout).to.contain('deferred: running the trigger in this process');
    expect(sensor.stdout).to.contain('the trigger fired: resuming the task');
    expect(Date.now() - started).to.be.at.least(1000);
  });

  it('exits 1 for a failing task, with the error in its log', async () => {
    const result = await tsflow(['tasks', 'test', 'failing_dag', 'boom'], env);
    expect(result.code).to.equal(1);
    expect(result.stdout).to.contain('about to fail').and.contain('failed — Error: boom: this task always fails');
  });

  it('wrote no row to any table', async () => {
    expect(await counts()).to.deep.equal(initial);
  });

  it('needs no database at all', async () => {
    const result = await tsflow(['tasks', 'test', 'short_defer_dag', 'short_defer'], { ...env, TSFLOW_DATABASE_URL: 'postgres://nobody:secret@127.0.0.1:1/none' });
    expect(result.code, result.stderr).to.equal(0);
  });

  it('refuses an unknown task, a bad date or invalid params with the value named', async () => {
    const task = await tsflow(['tasks', 'test', 'report_dag', 'nope'], env);
    expect(task.code).to.equal(1);
    expect(errorLines(task)[0]).to.contain("has no task 'nope'");
    const date = await tsflow(['tasks', 'test', 'report_dag', 'report', '07/04/2026'], env);
    expect(date.code).to.equal(2);
    expect(errorLines(date)[0]).to.contain("LOGICAL_DATE '07/04/2026' is not a date");
    const params = await tsflow(['tasks', 'test', 'report_dag', 'report', '--conf', '{"limit": -1}'], env);
    expect(params.code).to.equal(2);
    expect(errorLines(params)[0]).to.contain("param 'limit'");
  });
});
