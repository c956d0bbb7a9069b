import { expect } from 'chai';
import { DateTime } from 'luxon';
import path from 'node:path';
import pg from 'pg';
import { errorLines, tsflow, type CliResult } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { FIXTURES, startScheduler } from './support/rig.ts';

const SCHEDULE_DAGS = path.join(FIXTURES, 'schedule-dags');

/** Listens on one channel of the test database and collects the payloads it receives. */
async function listen(url: string, channel: string): Promise<{ payloads: string[]; close(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const payloads: string[] = [];
  client.on('notification', (n) => {
    if (n.channel === channel) payloads.push(n.payload ?? '');
  });
  await client.query(`LISTEN ${channel}`);
  return { payloads, close: () => client.end() };
}

/** Notifications arrive after the commit; give the socket a moment past the command's exit. */
async function eventually(check: () => boolean, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}

describe('tsflow dags pause / unpause / list-runs / next-execution / backfill', () => {
  let t: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: SCHEDULE_DAGS };
  });
  after(() => t.drop());

  const run = (...args: string[]): Promise<CliResult> => tsflow(args, env);
  const ok = async (...args: string[]): Promise<CliResult> => {
    const result = await run(...args);
    expect(result.code, `tsflow ${args.join(' ')}\n${result.stdout}\n${result.stderr}`).to.equal(0);
    return result;
  };
  const runsOf = (dagId: string) =>
    t.database.db.selectFrom('dag_run').selectAll().where('dag_id', '=', dagId).orderBy('logical_date').execute();
  const totalRuns = async () => Number((await t.database.db.selectFrom('dag_run').select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const day = (d: number): Date => new Date(Date.UTC(2026, 0, d));

  describe('pause and unpause', () => {
    it('flip dag.is_paused on a fresh database, notify tsflow_dag, and print the new state', async () => {
      const listener = await listen(t.url, 'tsflow_dag');
      try {
        const paused = await ok('dags', 'pause', 'pause_dag');
        expect(paused.stdout.trim()).to.equal('pause_dag is paused');
        const row = await t.database.db.selectFrom('dag').select('is_paused').where('dag_id', '=', 'pause_dag').executeTakeFirstOrThrow();
        expect(row.is_paused).to.equal(true);
        await eventually(() => listener.payloads.includes('paused'));
        expect(listener.payloads).to.include('paused');

        listener.payloads.length = 0;
        const unpaused = await ok('dags', 'unpause', 'pause_dag');
        expect(unpaused.stdout.trim()).to.equal('pause_dag is unpaused');
        const after = await t.database.db.selectFrom('dag').select('is_paused').where('dag_id', '=', 'pause_dag').executeTakeFirstOrThrow();
        expect(after.is_paused).to.equal(false);
        await eventually(() => listener.payloads.includes('paused'));
        expect(listener.payloads).to.deep.equal(['paused']);

        expect((await ok('dags', 'unpause', 'pause_dag')).stdout).to.contain('(it already was)');
      } finally {
        await listener.close();
      }
    });

    it('unpause recomputes the next run, so a DAG without catchup does not create the stale one', async () => {
      await ok('dags', 'pause', 'no_catchup_dag');
      const stale = { next_dagrun: day(5), next_dagrun_data_interval_start: day(5), next_dagrun_data_interval_end: day(6), next_dagrun_create_after: day(6) };
      await t.database.db.updateTable('dag').set(stale).where('dag_id', '=', 'no_catchup_dag').execute();
      await ok('dags', 'unpause', 'no_catchup_dag');
      const row = await t.database.db.selectFrom('dag').selectAll().where('dag_id', '=', 'no_catchup_dag').executeTakeFirstOrThrow();
      const yesterday = DateTime.utc().startOf('day').minus({ days: 1 });
      expect(row.next_dagrun?.toISOString()).to.equal(yesterday.toJSDate().toISOString());
      expect(row.next_dagrun_create_after?.toISOString()).to.equal(yesterday.plus({ days: 1 }).toJSDate().toISOString());
    });

    it('names an unknown DAG, lists the known ones, exits 1 and writes nothing', async () => {
      const result = await run('dags', 'pause', 'no_such_dag');
      expect(result.code).to.equal(1);
      expect(errorLines(result)[0]).to.contain("DAG 'no_such_dag' not found").and.contain('pause_dag').and.contain('backfill_dag');
      expect(await t.database.db.selectFrom('dag').select('dag_id').where('dag_id', '=', 'no_such_dag').executeTakeFirst()).to.equal(undefined);
    });
  });

  describe('backfill', () => {
    it('creates one queued backfill run per daily interval, with its data interval, in one notifying transaction', async () => {
      const listener = await listen(t.url, 'tsflow_ti');
      try {
        const result = await ok('dags', 'backfill', 'backfill_dag', '--from', '2026-01-01', '--to', '2026-01-05');
        expect(result.stdout).to.contain('backfill of backfill_dag: 5 created, 0 cleared, 0 skipped');
        expect(result.stdout).to.contain('2026-01-03T00:00:00Z  [2026-01-03T00:00:00Z, 2026-01-04T00:00:00Z)  created: backfill__2026-01-03T00:00:00+00:00');
        await eventually(() => listener.payloads.length > 0);
        expect(listener.payloads).to.deep.equal(['run']);
      } finally {
        await listener.close();
      }
      const runs = await runsOf('backfill_dag');
      expect(runs.map((r) => r.run_id)).to.deep.equal([1, 2, 3, 4, 5].map((d) => `backfill__2026-01-0${d}T00:00:00+00:00`));
      for (const [i, r] of runs.entries()) {
        expect(r).to.include({ run_type: 'backfill', state: 'queued' });
        expect(r.logical_date.toISOString()).to.equal(day(i + 1).toISOString());
        expect(r.data_interval_start?.toISOString()).to.equal(day(i + 1).toISOString());
        expect(r.data_interval_end?.toISOString()).to.equal(day(i + 2).toISOString());
      }
    });

    it('run again with reprocess none, creates nothing and says why each date was skipped', async () => {
      const before = await totalRuns();
      const result = await ok('dags', 'backfill', 'backfill_dag', '--from', '2026-01-01', '--to', '2026-01-05');
      expect(result.stdout).to.contain('0 created, 0 cleared, 5 skipped');
      expect(result.stdout).to.contain('skipped: run backfill__2026-01-01T00:00:00+00:00 is queued');
      expect(await totalRuns()).to.equal(before);
    });

    it('reprocesses a failed run with failed (clearing its task instances), a succeeded one only with completed, never a queued one', async () => {
      await ok('dags', 'backfill', 'reprocess_dag', '--from', '2026-01-01', '--to', '2026-01-03');
      const [first, second, third] = await runsOf('reprocess_dag');
      const db = t.database.db;
      await db.updateTable('dag_run').set({ state: 'failed', start_date: new Date(), end_date: new Date() }).where('run_id', '=', first!.run_id).execute();
      await db.updateTable('dag_run').set({ state: 'success', end_date: new Date() }).where('run_id', '=', second!.run_id).execute();
      await db.insertInto('task_instance').values({ dag_id: 'reprocess_dag', run_id: first!.run_id, task_id: 'only', state: 'failed', try_number: 3, max_tries: 2 }).execute();

      const none = await ok('dags', 'backfill', 'reprocess_dag', '--from', '2026-01-01', '--to', '2026-01-03');
      expect(none.stdout).to.contain(`skipped: run ${first!.run_id} exists (failed) and --reprocess-behavior is none`);

      const failed = await ok('dags', 'backfill', 'reprocess_dag', '--from', '2026-01-01', '--to', '2026-01-03', '--reprocess-behavior', 'failed');
      expect(failed.stdout).to.contain(`cleared: ${first!.run_id} (was failed), queued again`);
      expect(failed.stdout).to.contain(`skipped: run ${second!.run_id} succeeded and --reprocess-behavior is failed`);
      expect(failed.stdout).to.contain(`skipped: run ${third!.run_id} is queued`);
      expect(failed.stdout).to.contain('0 created, 1 cleared, 2 skipped');
      const rerun = (await runsOf('reprocess_dag'))[0]!;
      expect(rerun).to.include({ state: 'queued', run_type: 'backfill', start_date: null, end_date: null });
      const ti = await db.selectFrom('task_instance').selectAll().where('run_id', '=', first!.run_id).executeTakeFirstOrThrow();
      expect(ti.state).to.equal(null);
      expect(ti.max_tries).to.equal(5); // try 3 + the task's 2 retries

      const completed = await ok('dags', 'backfill', 'reprocess_dag', '--from', '2026-01-02', '--to', '2026-01-02', '--reprocess-behavior', 'completed');
      expect(completed.stdout).to.contain(`cleared: ${second!.run_id} (was success)`);
      expect((await runsOf('reprocess_dag'))[1]).to.include({ state: 'queued' });
      expect(await runsOf('reprocess_dag')).to.have.length(3);
    });

    it('--dry-run prints the plan and writes nothing', async () => {
      const before = await totalRuns();
      const result = await ok('dags', 'backfill', 'backfill_dag', '--from', '2026-01-04', '--to', '2026-01-07', '--dry-run');
      expect(result.stdout).to.contain('2026-01-06T00:00:00Z  [2026-01-06T00:00:00Z, 2026-01-07T00:00:00Z)  would be created: backfill__2026-01-06T00:00:00+00:00');
      expect(result.stdout).to.contain('skipped: run backfill__2026-01-04T00:00:00+00:00 is queued');
      expect(result.stdout).to.contain('dry run of a backfill of backfill_dag: 2 to create, 0 to clear, 2 to skip; nothing was written');
      expect(await totalRuns()).to.equal(before);
      // A DAG the database has not seen yet is parsed, not recorded.
      const fresh = await ok('dags', 'backfill', 'backfill_e2e_dag', '--from', '2026-01-01', '--to', '2026-01-02', '--dry-run');
      expect(fresh.stdout).to.contain('2 to create');
      expect(await t.database.db.selectFrom('dag').select('dag_id').where('dag_id', '=', 'backfill_e2e_dag').executeTakeFirst()).to.equal(undefined);
    });

    it('refuses bad input with a clear message and a non-zero exit, and writes nothing', async function () {
      this.timeout(90_000); // eight CLI runs
      const before = await totalRuns();
      const cases: [string[], number, string][] = [
        [['backfill_dag', '--from', '2026-01-05', '--to', '2026-01-01'], 2, 'is after --to'],
        [['backfill_dag', '--from', '2026-13-01', '--to', '2026-01-01'], 2, "--from '2026-13-01' is not a date"],
        [['backfill_dag', '--to', '2026-01-01'], 2, 'needs --from DATE'],
        [['backfill_dag', '--from', '2026-01-01', '--to', '2026-01-02', '--reprocess-behavior', 'all'], 2, "--reprocess-behavior 'all' is not one of none, failed, completed"],
        [['manual_only_dag', '--from', '2026-01-01', '--to', '2026-01-05'], 1, "DAG 'manual_only_dag' has no schedule"],
        [['backfill_dag', '--from', '2099-01-01', '--to', '2099-01-05'], 1, 'both in the future'],
        [['backfill_dag', '--from', '2025-01-01', '--to', '2025-06-01'], 1, 'no interval of DAG'],
        [['no_such_dag', '--from', '2026-01-01', '--to', '2026-01-05'], 1, "DAG 'no_such_dag' not found"],
      ];
      for (const [args, code, message] of cases) {
        const result = await run('dags', 'backfill', ...args);
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).to.equal(code);
        expect(errorLines(result)[0], args.join(' ')).to.contain(message);
      }
      expect(await totalRuns()).to.equal(before);
    });
    it('queues runs a scheduler then carries out', async function () {
      this.timeout(60_000);
      const own = await createTestDatabase();
      try {
        const ownEnv = { TSFLOW_DATABASE_URL: own.url, TSFLOW_DAGS_FOLDER: SCHEDULE_DAGS };
        const result = await tsflow(['dags', 'backfill', 'backfill_e2e_dag', '--from', '2026-01-01', '--to', '2026-01-02'], ownEnv);
        expect(result.code, result.stderr).to.equal(0);
        // Only this DAG's file: the folder's other DAGs are scheduled with catchup and would create runs of their own.
        await startScheduler(own.database, await DagBag.load(SCHEDULE_DAGS, [path.join(SCHEDULE_DAGS, 'backfill-e2e.ts')]));
        const runs = () =>
          own.database.db.selectFrom('dag_run').select(['run_id', 'state']).where('dag_id', '=', 'backfill_e2e_dag').orderBy('logical_date').execute();
        const until = Date.now() + 30_000;
        while ((await runs()).some((r) => r.state !== 'success' && r.state !== 'failed') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
        expect(await runs()).to.deep.equal([
          { run_id: 'backfill__2026-01-01T00:00:00+00:00', state: 'success' },
          { run_id: 'backfill__2026-01-02T00:00:00+00:00', state: 'success' },
        ]);
      } finally {
        await stopAll();
        await own.drop();
      }
    });
  });

  describe('list-runs', () => {
    before(async () => {
      await ok('dags', 'backfill', 'runs_dag', '--from', '2026-01-01', '--to', '2026-01-03');
      await t.database.db.updateTable('dag_run').set({ state: 'failed' }).where('run_id', '=', 'backfill__2026-01-02T00:00:00+00:00').where('dag_id', '=', 'runs_dag').execute();
    });

    it('lists runs newest logical date first, as text and as JSON', async () => {
      const text = await ok('dags', 'list-runs', 'runs_dag');
      const lines = text.stdout.trim().split('\n');
      expect(lines[0]).to.match(/^run id\s+type\s+state\s+logical date\s+data interval\s+start\s+end$/);
      expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal(['backfill__2026-01-03T00:00:00+00:00', 'backfill__2026-01-02T00:00:00+00:00', 'backfill__2026-01-01T00:00:00+00:00']);
      const json = JSON.parse((await ok('dags', 'list-runs', 'runs_dag', '--json')).stdout) as Record<string, unknown>[];
      expect(json).to.have.length(3);
      expect(json[0]).to.deep.equal({
        runId: 'backfill__2026-01-03T00:00:00+00:00',
        runType: 'backfill',
        state: 'queued',
        logicalDate: '2026-01-03T00:00:00Z',
        dataIntervalStart: '2026-01-03T00:00:00Z',
        dataIntervalEnd: '2026-01-04T00:00:00Z',
        startDate: null,
        endDate: null,
      });
      const limited = JSON.parse((await ok('dags', 'list-runs', 'runs_dag', '--json', '--limit', '2')).stdout) as unknown[];
      expect(limited).to.have.length(2);
    });

    it('still lists the runs of a DAG whose file no longer defines it', async () => {
      await t.database.db.insertInto('dag').values({ dag_id: 'gone_dag', fileloc: '/nowhere/gone.ts', description: null, is_active: false, timetable_summary: null }).execute();
      await t.database.db
        .insertInto('dag_run')
        .values({ dag_id: 'gone_dag', run_id: 'manual__old', state: 'success', run_type: 'manual', conf: '{}', logical_date: day(2) })
        .execute();
      const json = JSON.parse((await ok('dags', 'list-runs', 'gone_dag', '--json')).stdout) as { runId: string }[];
      expect(json.map((r) => r.runId)).to.deep.equal(['manual__old']);
    });

    it('filters by --state and refuses an unknown state, listing the valid ones', async () => {
      const failed = JSON.parse((await ok('dags', 'list-runs', 'runs_dag', '--state', 'failed', '--json')).stdout) as { runId: string }[];
      expect(failed.map((r) => r.runId)).to.deep.equal(['backfill__2026-01-02T00:00:00+00:00']);
      const unknown = await run('dags', 'list-runs', 'no_such_dag');
      expect(unknown.code).to.equal(1);
      expect(errorLines(unknown)[0]).to.contain("DAG 'no_such_dag' not found").and.contain('runs_dag');
      const bad = await run('dags', 'list-runs', 'runs_dag', '--state', 'done');
      expect(bad.code).to.equal(2);
      expect(errorLines(bad)[0]).to.contain("--state 'done' is not a run state: choose one of queued, running, success, failed");
    });
  });

  describe('next-execution', () => {
    it('gives the next logical dates of a @daily DAG from its startDate, then continues after its latest backfill run', async () => {
      const first = await ok('dags', 'next-execution', 'next_dag', '--num', '3');
      expect(first.stdout.trim().split('\n')).to.deep.equal(['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z']);
      expect(first.stderr).to.equal('');
      await ok('dags', 'backfill', 'next_dag', '--from', '2026-01-01', '--to', '2026-01-05');
      const after = await ok('dags', 'next-execution', 'next_dag');
      expect(after.stdout.trim()).to.equal('2026-01-06T00:00:00Z');
    });

    it('prints None for a DAG without a schedule, and warns on stderr when the DAG is paused', async () => {
      expect((await ok('dags', 'next-execution', 'manual_only_dag')).stdout.trim()).to.equal('None');
      await ok('dags', 'pause', 'next_dag');
      const paused = await ok('dags', 'next-execution', 'next_dag');
      expect(paused.stdout.trim()).to.equal('2026-01-06T00:00:00Z');
      expect(paused.stderr).to.contain("tsflow: warning: DAG 'next_dag' is paused");
    });
  });
});
