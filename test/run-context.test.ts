import { expect } from 'chai';
import { DateTime } from 'luxon';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { startQueuedRun } from '../src/db/scheduling.ts';
import { BaseOperator } from '../src/sdk/base-operator.ts';
import type { TaskContext } from '../src/sdk/context.ts';
import { dag, type Dag } from '../src/sdk/dag.ts';
import type { JsonObject } from '../src/sdk/json.ts';
import { param } from '../src/sdk/params.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { queue, runTask, taskInstance } from './support/rig.ts';

class CaptureOperator extends BaseOperator<null> {
  seen: TaskContext | undefined;
  override execute(context: TaskContext): null {
    this.seen = context;
    return null;
  }
}

const utc = (iso: string): Date => DateTime.fromISO(iso, { zone: 'utc' }).toJSDate();

describe('run context: dates, previous success and params', () => {
  let t: TestDatabase;
  let capture: CaptureOperator;
  let theDag: Dag;

  before(async () => {
    t = await createTestDatabase();
    theDag = dag({ dagId: 'ctx_dag', params: { limit: param(5, { type: 'integer', minimum: 1 }), label: 'plain' } }, () => {
      capture = new CaptureOperator({ taskId: 'capture' });
    });
    await upsertDags(t.database.db, [{ dagId: 'ctx_dag', fileloc: '' }]);
  });
  after(() => t.drop());

  async function run(runId: string, options: { logicalDate: string; interval?: [string, string]; conf?: JsonObject; runType?: 'manual' | 'scheduled' }) {
    await createDagRun(t.database.db, {
      dagId: 'ctx_dag',
      runId,
      conf: options.conf ?? {},
      logicalDate: utc(options.logicalDate),
      runType: options.runType ?? 'scheduled',
      ...(options.interval && { dataInterval: { start: utc(options.interval[0]), end: utc(options.interval[1]) } }),
    });
    await startQueuedRun(t.database.db, 'ctx_dag', runId, [{ taskId: 'capture', maxTries: 0, priorityWeight: 1, queue: 'default' }]);
    const key = { dagId: 'ctx_dag', runId, taskId: 'capture' };
    await queue(t.database, key);
    capture.seen = undefined;
    return runTask(t.database, theDag, key);
  }

  it('gives a run its interval, Airflow date strings, run type and no previous success when there is none', async () => {
    const result = await run('scheduled__2026-01-02T00:00:00+00:00', { logicalDate: '2026-01-02T00:00:00Z', interval: ['2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z'] });
    expect(result.state).to.equal('success');
    const c = capture.seen as TaskContext;
    expect(c.runType).to.equal('scheduled');
    expect(c.logicalDate.toISO()).to.equal('2026-01-02T00:00:00.000Z');
    expect(c.dataIntervalStart.toISO()).to.equal('2026-01-02T00:00:00.000Z');
    expect(c.dataIntervalEnd.toISO()).to.equal('2026-01-03T00:00:00.000Z');
    expect(c.dataIntervalEnd.zoneName).to.equal('UTC');
    expect([c.ds, c.dsNodash, c.ts, c.tsNodash]).to.deep.equal(['2026-01-02', '20260102', '2026-01-02T00:00:00+00:00', '20260102T000000']);
    expect(c.prevDataIntervalStartSuccess).to.equal(undefined);
    expect(c.prevDataIntervalEndSuccess).to.equal(undefined);
    expect(c.prevStartDateSuccess).to.equal(undefined);
    expect(c.prevEndDateSuccess).to.equal(undefined);
    expect(c.params).to.deep.equal({ limit: 5, label: 'plain' });
  });

  it('takes prev_*_success from the latest earlier successful run, not a later or a failed one', async () => {
    // The run above (2026-01-02) succeeded. A failed run at 01-03 and a successful one at 01-10 must be ignored.
    await createDagRun(t.database.db, { dagId: 'ctx_dag', runId: 'failed_0103', conf: {}, logicalDate: utc('2026-01-03T00:00:00Z') });
    await t.database.db.updateTable('dag_run').set({ state: 'failed' }).where('run_id', '=', 'failed_0103').execute();
    await createDagRun(t.database.db, { dagId: 'ctx_dag', runId: 'later_0110', conf: {}, logicalDate: utc('2026-01-10T00:00:00Z') });
    await t.database.db.updateTable('dag_run').set({ state: 'success' }).where('run_id', '=', 'later_0110').execute();
    const earlier = await t.database.db.selectFrom('dag_run').selectAll().where('run_id', '=', 'scheduled__2026-01-02T00:00:00+00:00').executeTakeFirstOrThrow();
    await t.database.db.updateTable('dag_run').set({ state: 'success', start_date: utc('2026-01-03T00:00:05Z'), end_date: utc('2026-01-03T00:01:00Z') }).where('run_id', '=', earlier.run_id).execute();

    const result = await run('scheduled__2026-01-04T00:00:00+00:00', {
      logicalDate: '2026-01-04T06:30:15.250Z',
      interval: ['2026-01-04T06:30:15.250Z', '2026-01-05T00:00:00Z'],
      conf: { limit: 9 },
    });
    expect(result.state).to.equal('success');
    const c = capture.seen as TaskContext;
    expect(c.prevDataIntervalStartSuccess?.toISO()).to.equal('2026-01-02T00:00:00.000Z');
    expect(c.prevDataIntervalEndSuccess?.toISO()).to.equal('2026-01-03T00:00:00.000Z');
    expect(c.prevStartDateSuccess?.toISO()).to.equal('2026-01-03T00:00:05.000Z');
    expect(c.prevEndDateSuccess?.toISO()).to.equal('2026-01-03T00:01:00.000Z');
    expect(c.ts).to.equal('2026-01-04T06:30:15.250000+00:00');
    expect(c.tsNodash).to.equal('20260104T063015');
    expect(c.params).to.deep.equal({ limit: 9, label: 'plain' });
  });

  it('gives a run stored without a data interval a zero-length one at its logical date', async () => {
    await createDagRun(t.database.db, { dagId: 'ctx_dag', runId: 'old_row', conf: {}, logicalDate: utc('2025-06-01T12:00:00Z') });
    await t.database.db.updateTable('dag_run').set({ data_interval_start: null, data_interval_end: null }).where('run_id', '=', 'old_row').execute();
    await startQueuedRun(t.database.db, 'ctx_dag', 'old_row', [{ taskId: 'capture', maxTries: 0, priorityWeight: 1, queue: 'default' }]);
    await queue(t.database, { dagId: 'ctx_dag', runId: 'old_row', taskId: 'capture' });
    expect((await runTask(t.database, theDag, { dagId: 'ctx_dag', runId: 'old_row', taskId: 'capture' })).state).to.equal('success');
    const c = capture.seen as TaskContext;
    expect(c.runType).to.equal('manual');
    expect(c.dataIntervalStart.toISO()).to.equal('2025-06-01T12:00:00.000Z');
    expect(c.dataIntervalEnd.toISO()).to.equal('2025-06-01T12:00:00.000Z');
  });

  it('fails the task, naming the field, when the run conf makes the params invalid', async () => {
    const result = await run('bad_conf', { logicalDate: '2026-02-01T00:00:00Z', conf: { limit: 0 } });
    expect(result.state).to.equal('failed');
    expect(capture.seen, 'the task code did not run').to.equal(undefined);
    expect(result.error).to.match(/InvalidParamsError: .*'limit'/);
    const ti = await taskInstance(t.database, { dagId: 'ctx_dag', runId: 'bad_conf', taskId: 'capture' });
    expect(ti.error).to.contain("param 'limit'");
  });
});
