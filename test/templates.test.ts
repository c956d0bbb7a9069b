import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import { silentLogger } from '../src/common/logger.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { clearTaskInstances } from '../src/db/clear.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import type { TaskInstanceKey } from '../src/db/schema.ts';
import { startQueuedRun } from '../src/db/scheduling.ts';
import { runTaskInstance } from '../src/runner/task-runner.ts';
import type { Scheduler } from '../src/scheduler/scheduler.ts';
import type { Dag } from '../src/sdk/dag.ts';
import type { JsonObject } from '../src/sdk/json.ts';
import { generateSecretKey } from '../src/secrets/keyring.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { InProcessExecutor } from './support/in-process-executor.ts';
import { FIXTURES, queue, startScheduler } from './support/rig.ts';
import { storedReturnValue } from './support/xcom.ts';

const FOLDER = path.join(FIXTURES, 'template-dags');
const PASSWORD = 'Tpl-s3cret-pass-9431';
const CONN_URI = `http://loader:${PASSWORD}@db.example:8080/base`;

/** A running run at `logicalDate` with its task instances (no scheduler needed). */
async function createRunAt(t: TestDatabase, dag: Dag, runId: string, logicalDate: string, conf: JsonObject): Promise<void> {
  await upsertDags(t.database.db, [{ dagId: dag.dagId, fileloc: dag.fileloc ?? '' }]);
  await createDagRun(t.database.db, { dagId: dag.dagId, runId, conf, logicalDate: new Date(logicalDate) });
  const specs = [...dag.tasks.values()].map((task) => ({ taskId: task.taskId, maxTries: task.settings.retries, priorityWeight: 1, queue: 'default', pool: task.settings.pool, poolSlots: 1 }));
  await startQueuedRun(t.database.db, dag.dagId, runId, specs, { checkLimits: false });
}

describe('templated fields and task.branch, end to end (PostgreSQL)', function () {
  this.timeout(120_000);
  let t: TestDatabase;
  let bag: DagBag;
  let dir: string;

  before(async () => {
    bag = await DagBag.load(FOLDER);
    expect([...bag.importErrors.values()].map(String)).to.deep.equal([]);
    t = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-templates-'));
  });
  after(async () => {
    await t.drop();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => stopAll());

  describe('in the task runner', () => {
    // The variable and the connection come from the environment here (the CLI test below reads a stored variable).
    before(() => {
      process.env['TSFLOW_VAR_TPL_K'] = 'var-k';
      process.env['TSFLOW_CONN_TPL_CONN'] = CONN_URI;
    });
    after(() => {
      delete process.env['TSFLOW_VAR_TPL_K'];
      delete process.env['TSFLOW_CONN_TPL_CONN'];
    });

    async function run(key: TaskInstanceKey) {
      await queue(t.database, key);
      return runTaskInstance(
        { db: t.database.db, logger: silentLogger(), logsFolder: path.join(dir, 'logs'), hostname: 'test', pid: process.pid, defaults: { deferrable: false } },
        bag.getDag(key.dagId),
        key,
      );
    }

    async function logText(key: TaskInstanceKey): Promise<string> {
      const folder = path.join(dir, 'logs', key.dagId, key.runId, key.taskId);
      const files = await readdir(folder);
      return (await Promise.all(files.map((f) => readFile(path.join(folder, f), 'utf8')))).join('\n');
    }

    it('a BashOperator sees ds, params, conf, a variable and ti.try_number rendered, and a connection password only masked in its log', async () => {
      await createRunAt(t, bag.getDag('tpl_bash'), 'r1', '2026-03-01T06:30:00Z', { y: 'conf-y' });
      const key = { dagId: 'tpl_bash', runId: 'r1', taskId: 'say' };
      const result = await run(key);
      expect(result.state, result.error).to.equal('success');
      expect(await storedReturnValue(t.database, key)).to.equal('2026-03-01|param-x|conf-y|var-k|1');
      const log = await logText(key);
      // The rendered command is logged, the password in it masked; the env var rendered from it too.
      expect(log).to.contain('pw=*** env=***');
      expect(log).to.contain('Running command: echo \\"pw=***');
      expect(log).not.to.contain(PASSWORD);
      // The operator holds its templates again after the run: cleared and run again, it renders its second try.
      expect(bag.getDag('tpl_bash').getTask('say')).to.have.property('bashCommand').that.contains('{{ ds }}');
      await clearTaskInstances(t.database.db, { dagId: key.dagId, runId: key.runId, taskIds: ['say'], retries: new Map([['say', 0]]) });
      expect((await run(key)).state).to.equal('success');
      expect(await storedReturnValue(t.database, key)).to.equal('2026-03-01|param-x|conf-y|var-k|2');
    });

    it('a template error fails the task, naming the field and the line', async () => {
      await createRunAt(t, bag.getDag('tpl_broken'), 'r1', '2026-03-01T00:00:00Z', {});
      const undefinedName = await run({ dagId: 'tpl_broken', runId: 'r1', taskId: 'undefined_name' });
      expect(undefinedName.state).to.equal('failed');
      expect(undefinedName.error).to.match(/template error in field 'bashCommand' \(line 2, column \d+\): attempted to output null or undefined value/);
      const badSyntax = await run({ dagId: 'tpl_broken', runId: 'r1', taskId: 'bad_syntax' });
      expect(badSyntax.state).to.equal('failed');
      expect(badSyntax.error).to.match(/template error in field 'bashCommand' \(line 1, column \d+\): unexpected token/);
      const { rows } = await sql<{ task_id: string; state: string }>`
        SELECT task_id, state FROM task_instance WHERE dag_id = 'tpl_broken' AND run_id = 'r1' ORDER BY task_id`.execute(t.database.db);
      expect(rows).to.deep.equal([{ task_id: 'bad_syntax', state: 'failed' }, { task_id: 'undefined_name', state: 'failed' }]);
    });
  });

  describe('task.branch under the scheduler', () => {
    let scheduler: Scheduler;
    beforeEach(async () => {
      ({ scheduler } = await startScheduler(t.database, bag, { pollIntervalMs: 1000 }, new InProcessExecutor(t.database, bag, 4)));
    });

    async function states(runId: string): Promise<Record<string, string | null>> {
      const { rows } = await sql<{ task_id: string; state: string | null }>`
        SELECT task_id, state FROM task_instance WHERE dag_id = 'tpl_branch' AND run_id = ${runId}`.execute(t.database.db);
      return Object.fromEntries(rows.map((r) => [r.task_id, r.state]));
    }

    it('follows the task ids it returns, and a task group id as the group\'s roots; the rest is skipped', async () => {
      const runs: [string, JsonObject][] = [
        ['follow_a', { follow: 'a' }],
        ['follow_g', { follow: 'g' }],
        ['follow_b_g', { follow: ['b', 'g'] }],
        ['follow_none', { follow: null }],
        ['follow_unknown', { follow: 'nope' }],
      ];
      for (const [runId, conf] of runs) await createRunAt(t, bag.getDag('tpl_branch'), runId, new Date().toISOString(), conf);
      scheduler.nudge();
      await eventually(
        async () => {
          const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM dag_run WHERE dag_id = 'tpl_branch' AND state IN ('success', 'failed')`.execute(t.database.db);
          return rows[0]!.n === runs.length;
        },
        'the branch runs to end',
        90_000,
      );
      const ok = { choose: 'success', pick: 'success' };
      expect(await states('follow_a')).to.deep.equal({ ...ok, a: 'success', b: 'skipped', 'g.first': 'skipped', 'g.second': 'skipped', join: 'success' });
      expect(await states('follow_g')).to.deep.equal({ ...ok, a: 'skipped', b: 'skipped', 'g.first': 'success', 'g.second': 'success', join: 'success' });
      expect(await states('follow_b_g')).to.deep.equal({ ...ok, a: 'skipped', b: 'success', 'g.first': 'success', 'g.second': 'success', join: 'success' });
      expect(await states('follow_none')).to.deep.equal({ ...ok, a: 'skipped', b: 'skipped', 'g.first': 'skipped', 'g.second': 'skipped', join: 'skipped' });
      const unknown = await states('follow_unknown');
      expect(unknown['pick']).to.equal('failed');
      const { rows: errors } = await sql<{ error: string | null }>`
        SELECT error FROM task_instance WHERE dag_id = 'tpl_branch' AND run_id = 'follow_unknown' AND task_id = 'pick'`.execute(t.database.db);
      expect(errors[0]?.error).to.contain('neither tasks nor task groups').and.contain('nope');
      // The followed task ids (the group expanded to its roots) are the branch's return value.
      expect(await storedReturnValue(t.database, { dagId: 'tpl_branch', runId: 'follow_g', taskId: 'pick' })).to.deep.equal(['g.first']);
    });
  });

  describe('tsflow tasks render', () => {
    const secretKey = generateSecretKey();
    let env: Record<string, string>;
    before(async () => {
      env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_SECRET_KEY: secretKey, TSFLOW_DAGS_FOLDER: FOLDER, TSFLOW_CONN_TPL_CONN: CONN_URI };
      const set = await tsflow(['variables', 'set', 'tpl_k', 'var-from-db'], env);
      expect(set.code, set.stderr).to.equal(0);
      await createRunAt(t, bag.getDag('tpl_bash'), 'render_run', '2026-05-01T00:00:00Z', { y: 'conf-of-the-run' });
    });

    it("prints each templated field rendered with the conf of the run at that logical date, secrets masked", async () => {
      const result = await tsflow(['tasks', 'render', 'tpl_bash', 'say', '2026-05-01'], env);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.contain('# bashCommand\necho "pw=*** env=$PW"\necho "2026-05-01|param-x|conf-of-the-run|var-from-db|1"\n');
      expect(result.stdout).to.contain('# env\n{\n  "PW": "***",\n  "DAY": "20260501"\n}\n');
      expect(result.stdout).to.contain('# cwd\n(not set)');
      expect(result.stdout + result.stderr).not.to.contain(PASSWORD);
    });

    it('exits 1 on a template error (no run at that date: an empty conf), naming the field and line; and on an unknown DAG or task', async () => {
      const noRun = await tsflow(['tasks', 'render', 'tpl_bash', 'say', '2026-05-02'], env);
      expect(noRun.code).to.equal(1);
      expect(noRun.stderr).to.contain('no run of tpl_bash has logical date 2026-05-02');
      expect(errorLines(noRun)[0]).to.match(/template error in field 'bashCommand' \(line 2, column \d+\): attempted to output null or undefined value/);
      const badSyntax = await tsflow(['tasks', 'render', 'tpl_broken', 'bad_syntax'], env);
      expect(badSyntax.code).to.equal(1);
      expect(errorLines(badSyntax)[0]).to.match(/template error in field 'bashCommand' \(line 1, column \d+\): unexpected token/);
      const unknownDag = await tsflow(['tasks', 'render', 'no_such_dag', 'say'], env);
      expect(unknownDag.code).to.equal(1);
      expect(errorLines(unknownDag)[0]).to.contain('no_such_dag');
      const unknownTask = await tsflow(['tasks', 'render', 'tpl_bash', 'no_such_task'], env);
      expect(unknownTask.code).to.equal(1);
      expect(errorLines(unknownTask)[0]).to.contain("DAG 'tpl_bash' has no task 'no_such_task'");
    });
  });
});
