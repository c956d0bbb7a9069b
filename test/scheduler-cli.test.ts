import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createDagRun } from '../src/db/dag-runs.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';
import { childPids, spawnDaemon, stopProcesses } from './support/processes.ts';

const NOOP_DAG = (dagId: string, schedule: string | null) => `
import { BaseOperator, dag } from 'tsflow';
class Noop extends BaseOperator { execute() { return 'ok'; } }
export default dag({ dagId: ${JSON.stringify(dagId)}, schedule: ${JSON.stringify(schedule)}, startDate: new Date(Date.now() - 60_000), maxActiveRuns: 100 }, () => {
  new Noop({ taskId: 'noop' });
});
`;

/**
 * `tsflow scheduler` as a user runs it: a real process with its DAG processor inside, on a folder
 * holding good DAG files and files that throw, loop forever and exit. The broken files become
 * import errors while the good DAGs are scheduled; a changed file's schedule takes effect without a
 * restart; a startFromTrigger sensor is deferred by the scheduler through its DAG code host; SIGTERM
 * ends it with exit 0 and no child process left behind.
 */
describe('tsflow scheduler with its DAG processor, on real files', function () {
  this.timeout(90_000);
  let t: TestDatabase;
  let dir: string;

  beforeEach(async () => {
    t = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-scheduler-cli-'));
  });
  afterEach(async () => {
    await stopProcesses();
    await t.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const runsOf = (dagId: string) =>
    t.database.db.selectFrom('dag_run').select(['run_id', 'run_type', 'state']).where('dag_id', '=', dagId).orderBy('logical_date').execute();

  it('schedules good DAGs while broken files are import errors, and takes a changed schedule without a restart', async () => {
    await writeFile(path.join(dir, 'good.ts'), NOOP_DAG('good_dag', '*/2 * * * * *'));
    await writeFile(path.join(dir, 'changing.ts'), NOOP_DAG('changing_dag', null));
    await writeFile(path.join(dir, 'throws.ts'), `throw new Error('this DAG file is broken');\n`);
    await writeFile(path.join(dir, 'loops.ts'), `for (;;) {}\n`);
    await writeFile(path.join(dir, 'exits.ts'), `process.exit(3);\n`);
    await writeFile(path.join(dir, 'sensor.ts'), `
import { dag, FileSensor } from 'tsflow';
export default dag({ dagId: 'sft_dag' }, () => {
  new FileSensor({ taskId: 'wait', path: ${JSON.stringify(path.join(dir, 'never.csv'))}, startFromTrigger: true, timeout: 600 });
});
`);
    const scheduler = spawnDaemon(['scheduler', '--parse-timeout', '2', '--parallelism', '2'], { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: dir });

    await eventually(async () => (await runsOf('good_dag')).filter((r) => r.state === 'success').length >= 2, 'two scheduled runs of the good DAG to succeed', 40_000);
    const errors = await t.database.db.selectFrom('import_error').select(['filename', 'stacktrace']).orderBy('filename').execute();
    expect(errors.map((e) => path.basename(e.filename))).to.deep.equal(['exits.ts', 'loops.ts', 'throws.ts']);
    expect(errors.find((e) => e.filename.endsWith('loops.ts'))?.stacktrace).to.match(/longer than 2 s/);
    expect(errors.find((e) => e.filename.endsWith('throws.ts'))?.stacktrace).to.match(/this DAG file is broken/);
    expect((await runsOf('good_dag')).every((r) => r.run_type === 'scheduled')).to.equal(true);

    // A new schedule for a DAG that had none: the watch sees the file, the scheduler the new DAG.
    expect(await runsOf('changing_dag')).to.deep.equal([]);
    await writeFile(path.join(dir, 'changing.ts'), NOOP_DAG('changing_dag', '* * * * * *'));
    await eventually(async () => (await runsOf('changing_dag')).length >= 2, 'runs on the changed schedule', 20_000);

    // startFromTrigger: deferred by the scheduler itself (its DAG code host built the trigger); no worker ran it.
    await createDagRun(t.database.db, { dagId: 'sft_dag', runId: 'by_hand', conf: {}, logicalDate: new Date() });
    const ti = await eventually(async () => {
      const row = await t.database.db.selectFrom('task_instance').selectAll().where('dag_id', '=', 'sft_dag').executeTakeFirst();
      return row?.state === 'deferred' ? row : undefined;
    }, 'the sensor to be deferred by the scheduler', 20_000);
    expect(ti).to.deep.include({ hostname: null, try_number: 1 });

    const pid = scheduler.child.pid as number;
    expect((await childPids(pid)).length, 'it has children (workers, the DAG code host)').to.be.greaterThan(0);
    const before = await childPids(pid);
    scheduler.child.kill('SIGTERM');
    expect(await scheduler.exited, scheduler.stderr()).to.equal(0);
    const alive = before.filter((p) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive, 'no child outlives the scheduler').to.deep.equal([]);
  });
});
