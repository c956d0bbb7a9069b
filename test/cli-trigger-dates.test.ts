import path from 'node:path';
import { expect } from 'chai';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { FIXTURES } from './support/rig.ts';

const CLI_DAGS = path.join(FIXTURES, 'cli-test-dags');

describe('tsflow dags trigger --logical-date and params', () => {
  let t: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: CLI_DAGS };
  });
  after(() => t.drop());

  const runs = () => t.database.db.selectFrom('dag_run').selectAll().orderBy('created_at').execute();

  it("gives a scheduled DAG's manual run the timetable's inferred interval and Airflow's run id", async () => {
    const result = await tsflow(['dags', 'trigger', 'params_dag', '--logical-date', '2026-03-05T10:00:00Z', '--conf', '{"region": "eu"}'], env);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.contain("run 'manual__2026-03-05T10:00:00+00:00'");
    const [run] = await runs();
    expect(run?.run_id).to.equal('manual__2026-03-05T10:00:00+00:00');
    expect(run?.run_type).to.equal('manual');
    expect(run?.logical_date.toISOString()).to.equal('2026-03-05T10:00:00.000Z');
    // tsflow's '@daily' is a data-interval timetable: a manual run covers the last complete day before its date.
    expect([run?.data_interval_start?.toISOString(), run?.data_interval_end?.toISOString()]).to.deep.equal(['2026-03-04T00:00:00.000Z', '2026-03-05T00:00:00.000Z']);
    expect(run?.conf).to.deep.equal({ region: 'eu' });
  });

  it('reads a date without an offset as UTC, and gives a DAG without a schedule a zero-length interval', async () => {
    const result = await tsflow(['dags', 'trigger', 'report_dag', '--logical-date', '2026-04-01'], env);
    expect(result.code, result.stderr).to.equal(0);
    const run = (await runs()).find((r) => r.dag_id === 'report_dag');
    expect(run?.run_id).to.equal('manual__2026-04-01T00:00:00+00:00');
    expect(run?.data_interval_start?.toISOString()).to.equal('2026-04-01T00:00:00.000Z');
    expect(run?.data_interval_end?.toISOString()).to.equal('2026-04-01T00:00:00.000Z');
  });

  it('refuses a bad --logical-date naming it, exit 2, nothing written', async () => {
    const before = (await runs()).length;
    const result = await tsflow(['dags', 'trigger', 'report_dag', '--logical-date', '2026-13-45'], env);
    expect(result.code).to.equal(2);
    expect(errorLines(result)[0]).to.contain("--logical-date '2026-13-45' is not a date");
    expect((await runs()).length).to.equal(before);
  });

  it('refuses a conf that misses a required param or breaks a schema, naming the field, before writing', async () => {
    const before = (await runs()).length;
    const missing = await tsflow(['dags', 'trigger', 'params_dag', '--logical-date', '2026-03-06'], env);
    expect(missing.code).to.equal(2);
    expect(errorLines(missing)[0]).to.contain("param 'region' is required");
    const invalid = await tsflow(['dags', 'trigger', 'params_dag', '--conf', '{"region": "eu", "limit": 0}'], env);
    expect(invalid.code).to.equal(2);
    expect(errorLines(invalid)[0]).to.contain("param 'limit'").and.contain('>= 1');
    expect((await runs()).length).to.equal(before);
  });
});
