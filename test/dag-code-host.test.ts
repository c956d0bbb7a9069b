import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import { DagCodeHost } from '../src/dag-code/dag-code-host.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { serializeDag } from '../src/dag-bag/serialized-dag.ts';
import { createDagRun } from '../src/db/dag-runs.ts';
import { recordDags } from '../src/db/serialized-dags.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll, track } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { InProcessExecutor } from './support/in-process-executor.ts';
import { startNotifier, taskInstance } from './support/rig.ts';

const SDK = fileURLToPath(new URL('../src/sdk/index.ts', import.meta.url));
const LUXON = fileURLToPath(new URL('../node_modules/luxon/build/es6/luxon.mjs', import.meta.url));

/** A DAG file with a startFromTrigger FileSensor; in the DAG code host (only there) `hang` blocks trigger(). */
function sensorDagFile(dagId: string, watched: string, options: { hang?: boolean } = {}): string {
  return `
import { dag, FileSensor } from ${JSON.stringify(SDK)};
class Sensor extends FileSensor {
  trigger(context) {
    ${options.hang ? "if (process.argv.includes('dag-code-host')) for (;;) {}" : ''}
    return super.trigger(context);
  }
}
export default dag({ dagId: ${JSON.stringify(dagId)} }, () => {
  new Sensor({ taskId: 'wait', path: ${JSON.stringify(watched)}, startFromTrigger: true, timeout: 60, pokeInterval: 0.2 });
});
`;
}

describe('DAG code host: startFromTrigger triggers are built outside the scheduler process', () => {
  let t: TestDatabase;
  let dir: string;
  const hosts: DagCodeHost[] = [];

  beforeEach(async () => {
    t = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-code-host-'));
  });
  afterEach(async () => {
    await stopAll();
    await Promise.all(hosts.splice(0).map((h) => h.close()));
    await t.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function start(file: string, dagId: string, requestTimeoutMs = 20_000, trigger = true) {
    const bag = await DagBag.load(dir, [file]);
    await recordDags(t.database.db, [serializeDag(bag.getDag(dagId), file)]);
    const host = new DagCodeHost({ dagsFolder: dir, logger: silentLogger(), requestTimeoutMs });
    hosts.push(host);
    // No dagBag: the scheduler works from the serialized DAG and asks the host for the trigger.
    const scheduler = track(
      new Scheduler({
        database: t.database,
        executor: new InProcessExecutor(t.database, bag, 2),
        startTriggerBuilder: host,
        logger: silentLogger(),
        notifier: await startNotifier(t.database),
      }),
    );
    await scheduler.start();
    if (trigger) await createDagRun(t.database.db, { dagId, runId: 'r1', conf: {}, logicalDate: new Date() });
    scheduler.nudge();
    return { host, scheduler };
  }

  it('defers a new try from the sensor code it runs in its child, with no worker involved', async function () {
    this.timeout(30_000);
    const file = path.join(dir, 'sft.ts');
    const watched = path.join(dir, 'never-there.csv');
    await writeFile(file, sensorDagFile('code_host_sft', watched));
    await start(file, 'code_host_sft');
    const key = { dagId: 'code_host_sft', runId: 'r1', taskId: 'wait' };
    const row = await eventually(async () => {
      const ti = await taskInstance(t.database, key).catch(() => undefined);
      return ti?.state === 'deferred' ? ti : undefined;
    }, 'the sensor to be deferred by the scheduler', 20_000);
    expect(row).to.deep.include({ try_number: 1, hostname: null, next_method: 'executeComplete' });
    const trigger = await t.database.db.selectFrom('trigger').selectAll().executeTakeFirstOrThrow();
    expect(trigger.classpath).to.match(/FileExistsTrigger/);
    expect(JSON.stringify(trigger.kwargs)).to.contain(watched);
  });

  it("asks a custom timetable's own code for each next run", async function () {
    this.timeout(30_000);
    const file = path.join(dir, 'custom.ts');
    await writeFile(
      file,
      `
import { DateTime } from ${JSON.stringify(LUXON)};
import { dag, BaseOperator } from ${JSON.stringify(SDK)};
class Noop extends BaseOperator { execute() {} }
const every3s = {
  summary: 'every 3 s', periodic: true, canBeScheduled: true,
  nextRun(last, restriction, now) {
    const start = last ? last.end.toMillis() : Math.floor((now.toMillis() - 3000) / 3000) * 3000;
    const at = (ms) => DateTime.fromMillis(ms, { zone: 'utc' });
    return { logicalDate: at(start), dataInterval: { start: at(start), end: at(start + 3000) }, runAfter: at(start + 3000) };
  },
  inferManualInterval(runAfter) { return { start: runAfter, end: runAfter }; },
  serialize() { return { kind: 'custom', name: 'every3s', data: null }; },
};
export default dag({ dagId: 'code_host_custom', schedule: every3s, startDate: '2026-01-01T00:00:00Z' }, () => { new Noop({ taskId: 'noop' }); });
`,
    );
    await start(file, 'code_host_custom', 20_000, false);
    await eventually(async () => {
      const runs = await t.database.db.selectFrom('dag_run').select(['logical_date', 'run_type']).where('dag_id', '=', 'code_host_custom').orderBy('logical_date').execute();
      return runs.length >= 2 ? runs : undefined;
    }, 'two scheduled runs of the custom timetable', 10_000).then((runs) => {
      expect(runs.every((r) => r.run_type === 'scheduled' && r.logical_date.getTime() % 3000 === 0)).to.equal(true);
      expect(runs[1]!.logical_date.getTime() - runs[0]!.logical_date.getTime()).to.equal(3000);
    });
  });

  it('a DAG file whose trigger() hangs costs the host process, not the scheduler: the task starts on a worker', async function () {
    this.timeout(30_000);
    const file = path.join(dir, 'hang.ts');
    const watched = path.join(dir, 'there.csv');
    await writeFile(watched, 'x');
    await writeFile(file, sensorDagFile('code_host_hang', watched, { hang: true }));
    const { scheduler } = await start(file, 'code_host_hang', 1500);
    const states: string[] = [];
    scheduler.on('ti:state', ({ state }) => states.push(state));
    const finished = new Promise<string>((resolve) => scheduler.on('run:state', (run) => run.state !== 'running' && resolve(run.state)));
    expect(await finished).to.equal('success');
    expect(states, 'never deferred by the scheduler; queued for and run by a worker').to.include.members(['queued', 'running']);
    expect(states).not.to.include('deferred');
  });
});
