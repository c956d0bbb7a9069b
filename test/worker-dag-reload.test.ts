import { expect } from 'chai';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { createRun, localExecutor, runEnded, startScheduler } from './support/rig.ts';

/** The SDK by absolute path: this test process and the worker process load the same module. */
const SDK = fileURLToPath(new URL('../src/sdk/index.ts', import.meta.url));

function versionDag(version: string): string {
  return [
    `import { BaseOperator, dag } from ${JSON.stringify(SDK)};`,
    `class Version extends BaseOperator { override execute(): string { return ${JSON.stringify(version)}; } }`,
    "export default dag({ dagId: 'reload_dag' }, () => { new Version({ taskId: 'version' }); });",
    '',
  ].join('\n');
}

describe('a warm worker process and a changed DAG file', () => {
  let t: TestDatabase;
  let folder: string;

  before(async () => {
    t = await createTestDatabase();
    folder = await mkdtemp(path.join(os.tmpdir(), 'tsflow-reload-'));
    await writeFile(path.join(folder, 'package.json'), JSON.stringify({ type: 'module' }));
  });
  after(async () => {
    await t.drop();
    await rm(folder, { recursive: true, force: true });
  });
  afterEach(stopAll);

  it('runs the code the file holds now, on the same worker process, also after the file was broken and fixed', async function () {
    this.timeout(40_000);
    const file = path.join(folder, 'reload.ts');
    await writeFile(file, versionDag('v1'));
    const bag = await DagBag.load(folder);
    const executor = localExecutor(t.database, { parallelism: 1, worker: { dagsFolder: folder } });
    const started: number[] = [];
    executor.events.on('worker:started', ({ pid }) => started.push(pid));
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const xcom = async (runId: string): Promise<unknown> =>
      (await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', runId).executeTakeFirstOrThrow()).value;

    let ended = runEnded(scheduler, 'first');
    await createRun(t.database, bag.getDag('reload_dag'), 'first');
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    expect(await xcom('first')).to.equal('v1');

    await writeFile(file, versionDag('v2'));
    const later = new Date(Date.now() + 5000);
    await utimes(file, later, later); // a coarse-mtime filesystem would otherwise hide the change
    ended = runEnded(scheduler, 'second');
    await createRun(t.database, bag.getDag('reload_dag'), 'second');
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    expect(await xcom('second')).to.equal('v2');

    // Broken, then fixed: Node caches a module whose evaluation threw, so the fix needs a new URL too.
    const touch = async (seconds: number): Promise<void> => {
      const at = new Date(Date.now() + seconds * 1000);
      await utimes(file, at, at);
    };
    await writeFile(file, "throw new Error('broken for a while');\n");
    await touch(10);
    ended = runEnded(scheduler, 'broken');
    await createRun(t.database, bag.getDag('reload_dag'), 'broken');
    scheduler.nudge();
    expect((await ended).state).to.equal('failed');
    await writeFile(file, versionDag('v3'));
    await touch(15);
    ended = runEnded(scheduler, 'fixed');
    await createRun(t.database, bag.getDag('reload_dag'), 'fixed');
    scheduler.nudge();
    expect((await ended).state).to.equal('success');
    expect(await xcom('fixed')).to.equal('v3');
    expect(started, 'every run on one warm worker').to.have.length(1);
  });

  it('a CommonJS DAG file cannot be re-imported: the worker runs the old code once, then a new worker runs the new', async function () {
    this.timeout(40_000);
    const cjs = path.join(folder, 'cjs');
    await mkdir(cjs);
    await writeFile(path.join(cjs, 'package.json'), JSON.stringify({ type: 'commonjs' }));
    const file = path.join(cjs, 'reload_cjs.ts');
    await writeFile(file, versionDag('v1').replace("'reload_dag'", "'reload_cjs'"));
    const bag = await DagBag.load(cjs);
    const executor = localExecutor(t.database, { parallelism: 1, worker: { dagsFolder: cjs } });
    const started: number[] = [];
    executor.events.on('worker:started', ({ pid }) => started.push(pid));
    const { scheduler } = await startScheduler(t.database, bag, {}, executor);
    const run = async (runId: string): Promise<unknown> => {
      const ended = runEnded(scheduler, runId);
      await createRun(t.database, bag.getDag('reload_cjs'), runId);
      scheduler.nudge();
      expect((await ended).state).to.equal('success');
      return (await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', runId).executeTakeFirstOrThrow()).value;
    };
    expect(await run('cjs_first')).to.equal('v1');
    await writeFile(file, versionDag('v2').replace("'reload_dag'", "'reload_cjs'"));
    const later = new Date(Date.now() + 5000);
    await utimes(file, later, later);
    expect(await run('cjs_second')).to.equal('v1');
    expect(await run('cjs_third')).to.equal('v2');
    expect(started).to.have.length(2);
  });
});
