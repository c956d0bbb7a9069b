import path from 'node:path';
import { expect } from 'chai';
import { upsertDags } from '../src/db/dag-runs.ts';
import { tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { FIXTURES } from './support/rig.ts';

const CLI_DAGS = path.join(FIXTURES, 'cli-test-dags');

interface Listed {
  dagId: string;
  schedule: string;
  isPaused: boolean | null;
  nextDagrun: string | null;
  nextDagrunCreateAfter: string | null;
}

describe('tsflow dags list: schedules, paused state and next run', () => {
  let t: TestDatabase;

  before(async () => {
    t = await createTestDatabase();
    await upsertDags(t.database.db, [{ dagId: 'params_dag', fileloc: '' }, { dagId: 'report_dag', fileloc: '' }]);
    await t.database.db
      .updateTable('dag')
      .set({ is_paused: true, next_dagrun: new Date('2026-03-04T00:00:00Z'), next_dagrun_create_after: new Date('2026-03-05T00:00:00Z') })
      .where('dag_id', '=', 'params_dag')
      .execute();
  });
  after(() => t.drop());

  it('shows each schedule, and the paused flag and next run from the database', async () => {
    const result = await tsflow(['dags', 'list', '--json', '--dags-folder', CLI_DAGS], { TSFLOW_DATABASE_URL: t.url });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.equal('');
    const dags = (JSON.parse(result.stdout) as { dags: Listed[] }).dags;
    const byId = new Map(dags.map((d) => [d.dagId, d]));
    expect(byId.get('params_dag')).to.deep.include({ schedule: '@daily', isPaused: true, nextDagrun: '2026-03-04T00:00:00.000Z', nextDagrunCreateAfter: '2026-03-05T00:00:00.000Z' });
    expect(byId.get('report_dag')).to.deep.include({ schedule: 'None', isPaused: false, nextDagrun: null });
    // Not yet recorded in the database: unknown, not "active".
    expect(byId.get('failing_dag')).to.deep.include({ isPaused: null });

    const text = await tsflow(['dags', 'list', '--dags-folder', CLI_DAGS], { TSFLOW_DATABASE_URL: t.url });
    expect(text.stdout).to.match(/^params_dag\s+1 task\(s\)\s+@daily\s+paused\s+next: 2026-03-04T00:00:00.000Z/m);
    expect(text.stdout).to.match(/^report_dag\s+1 task\(s\)\s+None\s+active/m);
  });

  it("lists the DAG folder without a database, showing '-' and saying why once on stderr", async () => {
    const result = await tsflow(['dags', 'list', '--dags-folder', CLI_DAGS], { TSFLOW_DATABASE_URL: 'postgres://nobody:secret@127.0.0.1:1/none' });
    expect(result.code).to.equal(0);
    expect(result.stdout).to.match(/^params_dag\s+1 task\(s\)\s+@daily\s+-\s+next: -/m);
    const notes = result.stderr.split('\n').filter((l) => l.includes('paused state and next run not shown'));
    expect(notes).to.have.length(1);
    expect(notes[0]).to.contain('cannot reach the database').and.not.contain('secret');
  });
});
