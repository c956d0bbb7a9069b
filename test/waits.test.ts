import { expect } from 'chai';
import { sql } from 'kysely';
import { Duration } from 'luxon';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { cancelWait, extendWait, fireWait, InvalidWaitOperationError, WaitNotFoundError, WaitNotPendingError } from '../src/db/wait-operations.ts';
import { InvalidWaitQueryError, listWaits, waitLateness, type Wait, type WaitQuery } from '../src/db/waits.ts';
import type { TaskInstanceKey } from '../src/db/schema.ts';
import { BaseOperator, dag, type JsonObject, type JsonValue, type TaskContext } from '../src/sdk/index.ts';
import { describeWait } from '../src/triggerer/describe-wait.ts';
import { DateTimeTrigger } from '../triggers/date-time-trigger.ts';
import { ControlledTrigger } from './fixtures/triggers/test-triggers.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { startScheduler, startTriggerer, taskInstance } from './support/rig.ts';

/** Defers to a ControlledTrigger (`conf.trigger`, default: hang) or, with `conf.dueInMs`, a DateTimeTrigger; returns what it resumed with. */
class WaitingOperator extends BaseOperator<JsonObject> {
  override execute(context: TaskContext): never {
    const dueInMs = context.conf['dueInMs'];
    const timeout = context.conf['timeoutSeconds'];
    this.defer({
      trigger:
        typeof dueInMs === 'number'
          ? new DateTimeTrigger({ moment: new Date(Date.now() + dueInMs) })
          : new ControlledTrigger((context.conf['trigger'] as JsonObject | undefined) ?? { mode: 'hang' }),
      ...(typeof timeout === 'number' ? { timeout } : {}),
    });
  }

  executeComplete(context: TaskContext, event: JsonValue | undefined): JsonObject {
    return { event: event ?? null, tryAtResume: context.tryNumber };
  }
}

const onceDag = dag({ dagId: 'waits_once' }, () => {
  new WaitingOperator({ taskId: 'wait' });
});
const retryDag = dag({ dagId: 'waits_retry' }, () => {
  new WaitingOperator({ taskId: 'wait', retries: 1, retryDelay: 0 });
});
const BAG = DagBag.of([onceDag, retryDag]);

describe('waits: listing, fire, cancel and extend (issue 14)', () => {
  let t: TestDatabase;
  let runNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(stopAll);

  /** Starts a scheduler and a triggerer, creates a run of `dagId` with `conf`, and waits until its task defers and is claimed. */
  async function deferredRun(dagId: string, conf: JsonObject) {
    const { scheduler } = await startScheduler(t.database, BAG);
    const triggerer = await startTriggerer(t.database);
    const runId = `run_${++runNo}`;
    await upsertDags(t.database.db, [{ dagId, fileloc: '' }]);
    await createDagRun(t.database.db, { dagId, runId, conf, logicalDate: new Date() });
    const key: TaskInstanceKey = { dagId, runId, taskId: 'wait' };
    const triggerId = await eventually(async () => {
      const ti = await taskInstance(t.database, key).catch(() => undefined);
      return ti?.state === 'deferred' && ti.trigger_id !== null && triggerer.activeTriggerIds.includes(ti.trigger_id) ? ti.trigger_id : undefined;
    }, 'the task to defer and its trigger to be claimed', 20_000);
    return { scheduler, triggerer, key, runId, triggerId };
  }

  async function returnValue(key: TaskInstanceKey): Promise<JsonObject> {
    const row = await t.database.db
      .selectFrom('xcom')
      .select('value')
      .where('dag_id', '=', key.dagId)
      .where('run_id', '=', key.runId)
      .where('task_id', '=', key.taskId)
      .where('key', '=', 'return_value')
      .executeTakeFirstOrThrow();
    return row.value as JsonObject;
  }

  describe('operations', () => {
    it('fire: the task resumes now, executeComplete sees who fired it, the run succeeds, the triggerer stops the trigger', async () => {
      const { scheduler, triggerer, key, runId, triggerId } = await deferredRun('waits_once', {});
      const ended = waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', 20_000);
      const stopped = waitForEvent(triggerer, 'trigger:cancelled', (e) => e.triggerId === triggerId, 20_000);
      const fired = await fireWait(t.database.db, triggerId, 'alice');
      expect(fired.resumed.map((r) => r.taskId)).to.deep.equal(['wait']);
      expect(fired.payload).to.deep.equal({ firedBy: 'alice', firedAt: fired.firedAt.toISOString() });
      expect((await ended).state).to.equal('success');
      await stopped;
      const value = await returnValue(key);
      expect(value['event']).to.deep.equal({ firedBy: 'alice', firedAt: fired.firedAt.toISOString() });
      expect(value['tryAtResume']).to.equal(1);
      expect(await t.database.db.selectFrom('trigger').select('id').where('id', '=', triggerId).executeTakeFirst()).to.equal(undefined);
      // A fire by hand is not lateness.
      expect((await taskInstance(t.database, key)).trigger_fired_at).to.equal(null);
    });

    it('fire of a time trigger carries its moment', async () => {
      const { scheduler, runId, key, triggerId } = await deferredRun('waits_once', { dueInMs: 3_600_000 });
      const ended = waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', 20_000);
      const fired = await fireWait(t.database.db, triggerId, 'alice');
      expect(fired.payload['moment']).to.be.a('string');
      expect(fired.payload).to.include({ firedBy: 'alice' });
      expect((await ended).state).to.equal('success');
      expect((await returnValue(key))['event']).to.deep.equal(fired.payload);
    });

    it('cancel: the try fails with "cancelled by …", a task with retries left goes up_for_retry, the triggerer stops the trigger', async () => {
      const { scheduler, triggerer, key, runId, triggerId } = await deferredRun('waits_retry', {});
      const retrying = waitForEvent(scheduler, 'ti:state', (c) => c.key.runId === runId && c.state === 'up_for_retry', 20_000);
      const stopped = waitForEvent(triggerer, 'trigger:cancelled', (e) => e.triggerId === triggerId, 20_000);
      const cancelled = await cancelWait(t.database.db, triggerId, 'bob');
      expect(cancelled.error).to.equal('cancelled by bob');
      expect(cancelled.failed.map((f) => f.tryNumber)).to.deep.equal([1]);
      const change = await retrying;
      expect(change.tryNumber).to.equal(1);
      await stopped;
      expect(triggerer.activeTriggerIds).to.not.include(triggerId);
      // The retry defers again, on a new trigger; cancelling that one fails the task and the run.
      const second = await eventually(async () => {
        const ti = await taskInstance(t.database, key);
        return ti.state === 'deferred' && ti.try_number === 2 && ti.trigger_id !== null ? ti.trigger_id : undefined;
      }, 'the retry to defer', 20_000);
      const ended = waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', 20_000);
      await cancelWait(t.database.db, second, 'carol');
      expect((await ended).state).to.equal('failed');
      const ti = await taskInstance(t.database, key);
      expect(ti.state).to.equal('failed');
      expect(ti.error).to.include('cancelled by carol');
    });

    it('extend: moves the timeout, and a wait that would have timed out does not', async () => {
      const { key, triggerId } = await deferredRun('waits_once', { timeoutSeconds: 2 });
      const before = (await taskInstance(t.database, key)).trigger_timeout as Date;
      const extended = await extendWait(t.database.db, triggerId, 'dave', { by: Duration.fromObject({ hours: 1 }) });
      expect(extended.triggerTimeout.getTime()).to.equal(before.getTime() + 3_600_000);
      expect(extended.tasks[0]?.triggerTimeout?.getTime()).to.equal(before.getTime());
      // Past the old deadline (by the database's clock) and then some, the task still waits.
      await eventually(
        async () => (await sql<{ past: boolean }>`SELECT now() > ${before}::timestamptz + interval '1.5 seconds' AS past`.execute(t.database.db)).rows[0]?.past === true,
        'the old deadline to pass',
        20_000,
        200,
      );
      const ti = await taskInstance(t.database, key);
      expect(ti.state).to.equal('deferred');
      expect(ti.trigger_timeout?.getTime()).to.equal(extended.triggerTimeout.getTime());
      // --until sets the moment; one in the past is refused.
      const until = new Date(Date.now() + 7_200_000);
      expect((await extendWait(t.database.db, triggerId, 'dave', { until })).triggerTimeout.getTime()).to.equal(until.getTime());
      const refused = await extendWait(t.database.db, triggerId, 'dave', { until: new Date(Date.now() - 1000) }).catch((e: unknown) => e);
      expect(refused).to.be.instanceOf(InvalidWaitOperationError).with.property('message').that.includes('not in the future');
      expect(await extendWait(t.database.db, triggerId, 'dave', { by: -5 }).catch((e: unknown) => e)).to.be.instanceOf(InvalidWaitOperationError);
      expect((await extendWait(t.database.db, triggerId, 'dave', { by: 60 })).triggerTimeout.getTime()).to.equal(until.getTime() + 60_000);
      await cancelWait(t.database.db, triggerId, 'cleanup');
    });

    it('a wait without a timeout cannot be extended --by, but can be given one --until', async () => {
      const { triggerId } = await deferredRun('waits_once', {});
      const refused = await extendWait(t.database.db, triggerId, 'erin', { by: Duration.fromObject({ minutes: 5 }) }).catch((e: unknown) => e);
      expect(refused).to.be.instanceOf(InvalidWaitOperationError).with.property('message').that.includes('has no timeout');
      const until = new Date(Date.now() + 600_000);
      expect((await extendWait(t.database.db, triggerId, 'erin', { until })).triggerTimeout.getTime()).to.equal(until.getTime());
      await cancelWait(t.database.db, triggerId, 'cleanup');
    });

    it('unknown ids and waits no longer pending are refused with the id named', async () => {
      for (const operation of [
        () => fireWait(t.database.db, 987654, 'x'),
        () => cancelWait(t.database.db, 987654, 'x'),
        () => extendWait(t.database.db, 987654, 'x', { by: Duration.fromObject({ minutes: 1 }) }),
      ]) {
        const error = await operation().catch((e: unknown) => e);
        expect(error).to.be.instanceOf(WaitNotFoundError).with.property('message').that.includes('987654');
      }
      // A trigger row nothing waits on any more (spent, its deletion not yet done).
      const { id } = await t.database.db
        .insertInto('trigger')
        .values({ classpath: 'test.ControlledTrigger', kwargs: JSON.stringify({ mode: 'hang' }) })
        .returning('id')
        .executeTakeFirstOrThrow();
      const error = await fireWait(t.database.db, id, 'x').catch((e: unknown) => e);
      expect(error).to.be.instanceOf(WaitNotPendingError).with.property('message').that.includes(`trigger ${id} is no longer pending`);
      await t.database.db.deleteFrom('trigger').where('id', '=', id).execute();
      expect(await fireWait(t.database.db, 0, 'x').catch((e: unknown) => e)).to.be.instanceOf(InvalidWaitOperationError);
      expect(await fireWait(t.database.db, 1, '  ').catch((e: unknown) => e)).to.be.instanceOf(InvalidWaitOperationError);
    });

    it('records the fire lateness of a time trigger the triggerer fired', async () => {
      const since = new Date(Date.now() - 1000);
      const { scheduler, runId, key } = await deferredRun('waits_once', { dueInMs: 1500 });
      await waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', 20_000);
      const report = await waitLateness(t.database.db, { since });
      const point = report.points.find((p) => p.runId === key.runId);
      expect(point, JSON.stringify(report)).to.not.equal(undefined);
      expect(point!.latenessMs).to.be.a('number');
      expect(report.p50Ms).to.be.a('number');
    });

    it('tsflow triggers fire|cancel|extend ID: exit 0 and say what happened; non-zero with a clear message otherwise', async function () {
      this.timeout(90_000); // six CLI processes, one after the other
      const env = { TSFLOW_DATABASE_URL: t.url };
      const { triggerId, key, scheduler, runId } = await deferredRun('waits_once', { timeoutSeconds: 600 });
      const extend = await tsflow(['triggers', 'extend', String(triggerId), '--by', '30m', '--as', 'frank'], env);
      expect(extend.code, extend.stderr).to.equal(0);
      expect(extend.stdout).to.match(new RegExp(`trigger ${triggerId} now times out at`));
      const ti = await taskInstance(t.database, key);
      const list = await tsflow(['triggers', 'waits', '--dag', 'waits_once', '--json'], env);
      expect(list.code, list.stderr).to.equal(0);
      const page = JSON.parse(list.stdout) as { waits: { triggerId: number; triggerTimeout: string }[]; total: number };
      expect(page.waits.find((w) => w.triggerId === triggerId)?.triggerTimeout).to.equal(ti.trigger_timeout?.toISOString());
      const badBy = await tsflow(['triggers', 'extend', String(triggerId), '--by', 'soon'], env);
      expect(badBy.code).to.equal(2);
      expect(errorLines(badBy).join('\n')).to.include("--by must be a duration");
      const ended = waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', 30_000);
      const fire = await tsflow(['triggers', 'fire', String(triggerId), '--as', 'frank'], env);
      expect(fire.code, fire.stderr).to.equal(0);
      expect(fire.stdout).to.include(`fired trigger ${triggerId} as frank`);
      expect((await ended).state).to.equal('success');
      expect(((await returnValue(key))['event'] as JsonObject)['firedBy']).to.equal('frank');
      const again = await tsflow(['triggers', 'cancel', String(triggerId)], env);
      expect(again.code).to.equal(1);
      expect(errorLines(again).join('\n')).to.include(`no pending trigger ${triggerId}`);
    });
  });

  describe('listWaits', () => {
    const N = 1000;
    let jobId: number;

    before(async () => {
      // 1,000 waits across three DAGs and two classes, a third without a timeout, timeouts in ties of
      // ten (the tiebreak must hold), a quarter owned by a triggerer job.
      await sql`DELETE FROM task_instance`.execute(t.database.db);
      await sql`DELETE FROM trigger`.execute(t.database.db);
      const { rows } = await sql<{ id: number }>`
        INSERT INTO job (job_type, hostname, pid, state) VALUES ('triggerer', 'waits-host', 1, 'running') RETURNING id`.execute(t.database.db);
      jobId = rows[0]!.id;
      await sql`INSERT INTO dag (dag_id, fileloc) SELECT 'list_' || d, '' FROM generate_series(0, 2) d ON CONFLICT DO NOTHING`.execute(t.database.db);
      await sql`INSERT INTO dag_run (dag_id, run_id, state) SELECT 'list_' || d, 'r', 'running' FROM generate_series(0, 2) d`.execute(t.database.db);
      await sql`
        WITH created AS (
          INSERT INTO trigger (classpath, kwargs, triggerer_id)
          SELECT CASE WHEN i % 2 = 0 THEN 'tsflow.triggers.DateTimeTrigger' ELSE 'tsflow.triggers.HttpPollTrigger' END,
                 CASE WHEN i % 2 = 0 THEN jsonb_build_object('moment', '2030-01-01T00:00:00.000Z')
                      ELSE jsonb_build_object('url', 'https://user:pw@example.com/status?token=secret', 'method', 'GET') END,
                 CASE WHEN i % 4 = 0 THEN ${jobId}::bigint END
          FROM generate_series(0, ${N - 1}::int) i
          RETURNING id
        ),
        numbered AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM created)
        INSERT INTO task_instance (dag_id, run_id, task_id, state, try_number, trigger_id, next_method, next_kwargs, trigger_timeout)
        SELECT 'list_' || (i % 3), 'r', 't' || i, 'deferred', 1, id, 'executeComplete', '{}'::jsonb,
               CASE WHEN i % 3 = 1 THEN NULL ELSE now() + make_interval(secs => 1000 + (i / 10)) + interval '0.000123 seconds' END
        FROM numbered`.execute(t.database.db);
    });

    async function all(query: WaitQuery): Promise<Wait[]> {
      const seen: Wait[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await listWaits(t.database.db, { ...query, cursor });
        seen.push(...page.waits);
        if (page.nextCursor === null) return seen;
        cursor = page.nextCursor;
      }
      throw new Error('more than 100 pages');
    }

    function sortedBy(waits: readonly Wait[], key: (w: Wait) => number): boolean {
      return waits.every((w, i) => i === 0 || key(waits[i - 1]!) < key(w) || (key(waits[i - 1]!) === key(w) && waits[i - 1]!.triggerId < w.triggerId));
    }

    it('pages through every wait exactly once, in each order and direction', async () => {
      for (const order of ['timeout', 'created'] as const) {
        for (const direction of ['asc', 'desc'] as const) {
          const waits = await all({ order, direction, limit: 97 });
          const ids = waits.map((w) => w.triggerId);
          expect(ids, `${order} ${direction}`).to.have.length(N);
          expect(new Set(ids).size, `${order} ${direction}`).to.equal(N);
          const shown = direction === 'asc' ? waits : [...waits].reverse();
          const key = order === 'timeout' ? (w: Wait) => w.triggerTimeout?.getTime() ?? Number.POSITIVE_INFINITY : () => 0;
          expect(sortedBy(shown, key), `${order} ${direction} order`).to.equal(true);
        }
      }
    });

    it('filters by DAG, task, classpath and triggerer, and counts what matches', async () => {
      const dag1 = await all({ dagId: 'list_1', limit: 500 });
      expect(dag1).to.have.length(333);
      expect(dag1.every((w) => w.dagId === 'list_1' && w.triggerTimeout === null && w.timeLeftSeconds === null)).to.equal(true);
      expect(await listWaits(t.database.db, { dagId: 'list_1', limit: 10 })).to.deep.include({ total: 333, totalExact: true });
      const http = await all({ classpath: 'tsflow.triggers.HttpPollTrigger', limit: 500 });
      expect(http).to.have.length(500);
      expect(http[0]?.waitsFor).to.deep.equal({ kind: 'http', method: 'GET', url: 'https://example.com/status' });
      const owned = await listWaits(t.database.db, { triggererId: jobId, limit: 500 });
      expect(owned.total).to.equal(250);
      expect(owned.waits.every((w) => w.triggererHostname === 'waits-host')).to.equal(true);
      expect((await listWaits(t.database.db, { triggererId: 'unassigned', limit: 1 })).total).to.equal(750);
      const one = await listWaits(t.database.db, { dagId: 'list_0', taskId: 't3' });
      expect(one.waits.map((w) => w.taskId)).to.deep.equal(['t3']);
      expect(one.waits[0]?.waitsFor.kind).to.equal('http');
      // t99, t990…t999; a search is not counted (it would read every wait).
      expect((await all({ search: 'T99', limit: 5 })).map((w) => w.taskId).sort()).to.deep.equal(['t99', ...Array.from({ length: 10 }, (_, i) => `t99${i}`)]);
      expect((await listWaits(t.database.db, { search: 'T99' })).total).to.equal(null);
      // Creation order with a trigger filter, paged (the merge-join path).
      const httpCreated = await all({ classpath: 'tsflow.triggers.HttpPollTrigger', order: 'created', limit: 33 });
      expect(httpCreated.map((w) => w.triggerId)).to.deep.equal(http.map((w) => w.triggerId).sort((a, b) => a - b));
      const time = await listWaits(t.database.db, { dagId: 'list_0', taskId: 't0' });
      expect(time.waits[0]?.waitsFor).to.deep.equal({ kind: 'time', dueAt: '2030-01-01T00:00:00.000Z' });
      expect(time.waits[0]?.timeLeftSeconds).to.be.within(990, 1010);
    });

    it('refuses a bad limit, and a cursor of another order', async () => {
      expect(await listWaits(t.database.db, { limit: 501 }).catch((e: unknown) => e)).to.be.instanceOf(InvalidWaitQueryError);
      const page = await listWaits(t.database.db, { order: 'created', limit: 5 });
      const error = await listWaits(t.database.db, { order: 'timeout', cursor: page.nextCursor! }).catch((e: unknown) => e);
      expect(error).to.be.instanceOf(InvalidWaitQueryError).with.property('message').that.includes('order created asc');
      expect(await listWaits(t.database.db, { cursor: 'garbage' }).catch((e: unknown) => e)).to.be.instanceOf(InvalidWaitQueryError);
    });
  });

  describe('describeWait', () => {
    it('shows a due time, a path, or an HTTP URL without credentials or query, and nothing of other kinds', () => {
      expect(describeWait('tsflow.triggers.DateTimeTrigger', { moment: '2030-01-01T00:00:00Z' })).to.deep.equal({ kind: 'time', dueAt: '2030-01-01T00:00:00.000Z' });
      expect(describeWait('tsflow.triggers.FileExistsTrigger', { path: '/data/*.csv' })).to.deep.equal({ kind: 'file', path: '/data/*.csv' });
      expect(
        describeWait('tsflow.triggers.HttpPollTrigger', { url: 'https://u:p@api.example.com:8443/jobs/7?api_key=abc#x', method: 'POST', headers: { authorization: 'Bearer t' } }),
      ).to.deep.equal({ kind: 'http', method: 'POST', url: 'https://api.example.com:8443/jobs/7' });
      expect(describeWait('my.Trigger', { secret: 'x' })).to.deep.equal({ kind: 'other' });
      expect(describeWait('tsflow.triggers.DateTimeTrigger', { moment: 'soon' })).to.deep.equal({ kind: 'other' });
    });
  });
});
