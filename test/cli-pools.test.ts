import { expect } from 'chai';
import { sql } from 'kysely';
import { errorLines, tsflow, type CliResult } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

describe('tsflow pools set / list / get / delete', () => {
  let t: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url };
  });
  after(() => t.drop());

  const run = (...args: string[]): Promise<CliResult> => tsflow(args, env);
  const ok = async (...args: string[]): Promise<CliResult> => {
    const result = await run(...args);
    expect(result.code, `tsflow ${args.join(' ')}\n${result.stdout}\n${result.stderr}`).to.equal(0);
    return result;
  };
  const pools = () => t.database.db.selectFrom('pool').selectAll().orderBy('pool').execute();

  it('sets, lists, gets and deletes pools, with their slot counts', async function () {
    this.timeout(60_000);
    await ok('pools', 'set', 'db', '4', '--description', 'the reporting database', '--include-deferred');
    await ok('pools', 'set', 'endless', '-1');
    // Task instances occupying slots: 2 running (one of 2 slots), 1 queued, 1 deferred.
    await sql`INSERT INTO dag (dag_id, fileloc) VALUES ('d', 'd.ts')`.execute(t.database.db);
    await sql`INSERT INTO dag_run (dag_id, run_id, state, run_type, logical_date) VALUES ('d', 'r', 'running', 'manual', now())`.execute(t.database.db);
    await sql`INSERT INTO task_instance (dag_id, run_id, task_id, state, pool, pool_slots) VALUES
      ('d', 'r', 'a', 'running', 'db', 2), ('d', 'r', 'b', 'queued', 'db', 1), ('d', 'r', 'c', 'deferred', 'db', 1),
      ('d', 'r', 'e', 'scheduled', 'db', 1)`.execute(t.database.db);

    const list = JSON.parse((await ok('pools', 'list', '--json')).stdout) as Record<string, unknown>[];
    expect(list.map((p) => p['name'])).to.deep.equal(['db', 'default_pool', 'endless']);
    expect(list[0]).to.deep.equal({
      name: 'db', slots: 4, running: 2, queued: 1, deferred: 1, open: 0, includeDeferred: true, description: 'the reporting database',
    });
    expect(list[1]).to.include({ name: 'default_pool', slots: 128, open: 128 });
    expect(list[2]).to.include({ slots: -1, open: null });

    const text = (await ok('pools', 'list')).stdout;
    expect(text).to.match(/^pool\s+slots\s+running\s+queued\s+deferred\s+open/);
    expect(text).to.match(/endless\s+unlimited\s+0\s+0\s+0\s+unlimited/);

    // Set again without --include-deferred: off, as in Airflow; the description is kept.
    await ok('pools', 'set', 'db', '6');
    const db = JSON.parse((await ok('pools', 'get', 'db', '--json')).stdout) as Record<string, unknown>;
    expect(db).to.include({ slots: 6, open: 3, includeDeferred: false, description: 'the reporting database' });

    const deleted = await ok('pools', 'delete', 'db');
    expect(deleted.stdout).to.contain("pool 'db' deleted");
    expect(deleted.stderr).to.contain('still had 4 slot(s) taken');
    expect((await pools()).map((p) => p.pool)).to.deep.equal(['default_pool', 'endless']);
  });

  it('refuses bad input with a clear error, a non-zero exit and nothing written', async function () {
    this.timeout(60_000);
    const before = await pools();
    const cases: [string[], RegExp][] = [
      [['pools', 'set', 'p', '-2'], /SLOTS must be a whole number ≥ 0, or -1 for unlimited; got '-2'/],
      [['pools', 'set', 'p', 'many'], /got 'many'/],
      [['pools', 'set', 'p', '1.5'], /got '1\.5'/],
      [['pools', 'get', 'no_such'], /pool 'no_such' does not exist/],
      [['pools', 'delete', 'no_such'], /pool 'no_such' does not exist/],
      [['pools', 'delete', 'default_pool'], /default_pool cannot be deleted/],
    ];
    for (const [args, message] of cases) {
      const result = await run(...args);
      expect(result.code, args.join(' ')).to.not.equal(0);
      expect(errorLines(result).join('\n'), args.join(' ')).to.match(message);
    }
    expect(await pools(), 'nothing written').to.deep.equal(before);
  });
});
