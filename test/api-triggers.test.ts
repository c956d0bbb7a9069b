import { expect } from 'chai';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { BaseOperator, dag, type JsonObject, type JsonValue, type TaskContext } from '../src/sdk/index.ts';
import { DateTimeTrigger } from '../triggers/date-time-trigger.ts';
import { call, login, startApi, type ApiRig } from './support/api.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually, waitForEvent } from './support/events.ts';
import { startScheduler, startTriggerer, taskInstance } from './support/rig.ts';
import { insertPendingWait, TRIGGER_ROUTES } from './support/trigger-routes.ts';

/** Defers on a DateTimeTrigger due `conf.dueInMs` from now; returns the event it resumed with. */
class TimeWaiter extends BaseOperator<JsonObject> {
  override execute(context: TaskContext): never {
    this.defer({ trigger: new DateTimeTrigger({ moment: new Date(Date.now() + Number(context.conf['dueInMs'] ?? 3_600_000)) }) });
  }

  executeComplete(_context: TaskContext, event: JsonValue | undefined): JsonObject {
    return { event: event ?? null };
  }
}

const BAG = DagBag.of([
  dag({ dagId: 'api_waits' }, () => {
    new TimeWaiter({ taskId: 'wait' });
  }),
]);

interface WaitJson {
  trigger_id: number;
  dag_id: string;
  dag_run_id: string;
  task_id: string;
  waits_for: { kind: string; due_at?: string };
  triggerer_id: number | null;
  age_seconds: number;
  time_left_seconds: number | null;
  trigger_timeout: string | null;
}
interface WaitPageJson {
  triggers: WaitJson[];
  next_cursor: string | null;
  total_entries: number | null;
}

describe('API: pending waits (GET /triggers, fire, cancel, extend) (issue 14)', function () {
  this.timeout(120_000);
  let tdb: TestDatabase;
  let api: ApiRig;
  let runNo = 0;
  const nextRun = (): string => `r${++runNo}`;

  before(async () => {
    tdb = await createTestDatabase();
    api = await startApi(tdb.database);
  });
  after(async () => {
    await api?.stop();
    await tdb?.drop();
  });
  afterEach(stopAll);

  describe('auth: every triggers route refuses anonymous callers and needs its role', () => {
    for (const [method, template, need] of TRIGGER_ROUTES) {
      it(`${method} ${template}: needs ${need}`, async () => {
        const path = async (): Promise<string> => template.replace('{trigger_id}', String(await insertPendingWait(tdb.database, 'matrix', nextRun())));
        const body = template.endsWith('/extend') ? { by_seconds: 60 } : undefined;
        expect((await call(api.url, method, await path(), { body })).status, 'anonymous').to.equal(401);
        expect((await call(api.url, method, await path(), { body, token: 'tsf_forged' })).status, 'forged token').to.equal(401);
        if (need === 'operator') expect((await call(api.url, method, await path(), { body, token: api.tokens.viewer })).status, 'viewer').to.equal(403);
        const allowed = await call(api.url, method, await path(), { body, token: api.tokens[need] });
        expect(allowed.status, JSON.stringify(allowed.body)).to.equal(200);
      });
    }

    it('a browser session must send its CSRF token to operate a wait', async () => {
      const { cookie, csrf } = await login(api.url, 'operator');
      const id = await insertPendingWait(tdb.database, 'csrf', nextRun());
      const refused = await call(api.url, 'POST', `/api/v1/triggers/${id}/fire`, { cookie });
      expect(refused.status).to.equal(403);
      expect(String(refused.body['detail'])).to.include('CSRF');
      expect((await call(api.url, 'POST', `/api/v1/triggers/${id}/fire`, { cookie, csrf })).status).to.equal(200);
    });
  });

  it('lists pending waits a keyset page at a time (oldest first), with filters and the total', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push(await insertPendingWait(tdb.database, 'paging', `p${i}`));
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?dag_id=paging&limit=2&order_by=created${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page: { status: number; body: WaitPageJson } = await call<WaitPageJson>(api.url, 'GET', `/api/v1/triggers${query}`, { token: api.tokens.viewer });
      expect(page.status).to.equal(200);
      expect(page.body.total_entries).to.equal(5);
      seen.push(...page.body.triggers.map((w) => w.trigger_id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).to.equal(3);
    expect(seen).to.deep.equal(ids);
    const one = (await call<WaitPageJson>(api.url, 'GET', '/api/v1/triggers?search=P3&dag_id=paging', { token: api.tokens.viewer })).body;
    expect(one.triggers.map((w) => w.dag_run_id)).to.deep.equal(['p3']);
    const w = one.triggers[0] as WaitJson;
    expect(w.waits_for.kind).to.equal('time');
    expect(Date.parse(w.waits_for.due_at ?? '')).to.be.greaterThan(Date.now());
    expect(w.triggerer_id).to.equal(null);
    expect(w.time_left_seconds).to.be.within(3600, 7200);
    const unassigned = (await call<WaitPageJson>(api.url, 'GET', '/api/v1/triggers?triggerer_id=unassigned&dag_id=paging&with_total=false', { token: api.tokens.viewer })).body;
    expect(unassigned.triggers).to.have.length(5);
    expect(unassigned.total_entries).to.equal(null);
  });

  it('refuses a bad cursor, an unknown order and a cursor of another order, saying what to do', async () => {
    const bad = await call(api.url, 'GET', '/api/v1/triggers?cursor=nonsense', { token: api.tokens.viewer });
    expect(bad.status).to.equal(400);
    expect(String(bad.body['detail'])).to.include('pass a nextCursor unchanged');
    expect((await call(api.url, 'GET', '/api/v1/triggers?order_by=age', { token: api.tokens.viewer })).status).to.equal(400);
    for (let i = 0; i < 2; i++) await insertPendingWait(tdb.database, 'orders', `o${i}`);
    const first = await call<WaitPageJson>(api.url, 'GET', '/api/v1/triggers?dag_id=orders&limit=1', { token: api.tokens.viewer });
    const mixed = await call(api.url, 'GET', `/api/v1/triggers?dag_id=orders&order_by=-created&cursor=${encodeURIComponent(first.body.next_cursor ?? '')}`, { token: api.tokens.viewer });
    expect(mixed.status).to.equal(400);
    expect(String(mixed.body['detail'])).to.include('the cursor was made for order timeout asc');
  });

  it('cancel: the task\'s try is failed with "cancelled by USER", and the audit log says who', async () => {
    const id = await insertPendingWait(tdb.database, 'cancels', nextRun());
    const answer = await call<{ error: string; failed: { task_id: string }[] }>(api.url, 'POST', `/api/v1/triggers/${id}/cancel`, { token: api.tokens.operator });
    expect(answer.status).to.equal(200);
    expect(answer.body.error).to.equal('cancelled by operator');
    expect(answer.body.failed.map((f) => f.task_id)).to.deep.equal(['wait']);
    const ti = await tdb.database.db.selectFrom('task_instance').selectAll().where('dag_id', '=', 'cancels').executeTakeFirstOrThrow();
    expect(ti.state).to.equal('scheduled');
    expect(ti.next_kwargs).to.deep.include({ error: 'cancelled by operator' });
    const audit = await tdb.database.db.selectFrom('audit_log').selectAll().where('action', '=', 'trigger.cancel').where('target', '=', `trigger_id=${id}`).executeTakeFirst();
    expect(audit?.username).to.equal('operator');
    // Gone now: a second cancel is a 404 naming the id.
    const again = await call(api.url, 'POST', `/api/v1/triggers/${id}/cancel`, { token: api.tokens.operator });
    expect(again.status).to.equal(404);
    expect(String(again.body['detail'])).to.include(`no pending trigger ${id}`);
  });

  it('extend: by_seconds moves the timeout, until sets it; exactly one is needed, and the past is refused', async () => {
    const id = await insertPendingWait(tdb.database, 'extends', nextRun());
    const before = (await tdb.database.db.selectFrom('task_instance').select('trigger_timeout').where('trigger_id', '=', id).executeTakeFirstOrThrow()).trigger_timeout as Date;
    const moved = await call<{ trigger_timeout: string }>(api.url, 'POST', `/api/v1/triggers/${id}/extend`, { token: api.tokens.operator, body: { by_seconds: 600 } });
    expect(moved.status).to.equal(200);
    expect(Date.parse(moved.body.trigger_timeout)).to.equal(before.getTime() + 600_000);
    const until = new Date(Date.now() + 86_400_000).toISOString();
    const set = await call<{ trigger_timeout: string }>(api.url, 'POST', `/api/v1/triggers/${id}/extend`, { token: api.tokens.operator, body: { until } });
    expect(set.body.trigger_timeout).to.equal(until);
    expect((await call(api.url, 'POST', `/api/v1/triggers/${id}/extend`, { token: api.tokens.operator, body: {} })).status).to.equal(400);
    expect((await call(api.url, 'POST', `/api/v1/triggers/${id}/extend`, { token: api.tokens.operator, body: { by_seconds: 1, until } })).status).to.equal(400);
    const past = await call(api.url, 'POST', `/api/v1/triggers/${id}/extend`, { token: api.tokens.operator, body: { until: '2020-01-01T00:00:00Z' } });
    expect(past.status).to.equal(400);
    expect(String(past.body['detail'])).to.include('not in the future');
  });

  it('a trigger row nothing waits on any more is a 409', async () => {
    const { id } = await tdb.database.db
      .insertInto('trigger')
      .values({ classpath: 'tsflow.triggers.DateTimeTrigger', kwargs: JSON.stringify({ moment: new Date().toISOString() }) })
      .returning('id')
      .executeTakeFirstOrThrow();
    const answer = await call(api.url, 'POST', `/api/v1/triggers/${id}/fire`, { token: api.tokens.operator });
    expect(answer.status).to.equal(409);
    expect(String(answer.body['detail'])).to.include('no longer pending');
    await tdb.database.db.deleteFrom('trigger').where('id', '=', id).execute();
  });

  it('a wait fired through the API resumes its task, which sees who fired it; the run succeeds', async () => {
    const { scheduler } = await startScheduler(tdb.database, BAG);
    const triggerer = await startTriggerer(tdb.database);
    await upsertDags(tdb.database.db, [{ dagId: 'api_waits', fileloc: '' }]);
    const runId = nextRun();
    await createDagRun(tdb.database.db, { dagId: 'api_waits', runId, conf: {}, logicalDate: new Date() });
    const key = { dagId: 'api_waits', runId, taskId: 'wait' };
    const triggerId = await eventually(async () => {
      const ti = await taskInstance(tdb.database, key).catch(() => undefined);
      return ti?.state === 'deferred' && ti.trigger_id !== null && triggerer.activeTriggerIds.includes(ti.trigger_id) ? ti.trigger_id : undefined;
    }, 'the task to defer and its trigger to be claimed', 30_000);
    const listed = await call<WaitPageJson>(api.url, 'GET', `/api/v1/triggers?dag_id=api_waits&dag_run_id=${runId}`, { token: api.tokens.viewer });
    expect(listed.body.triggers.map((w) => [w.trigger_id, w.triggerer_id])).to.deep.equal([[triggerId, triggerer.jobId]]);
    const ended = waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', 30_000);
    const fired = await call<{ resumed: { task_id: string }[]; actor: string }>(api.url, 'POST', `/api/v1/triggers/${triggerId}/fire`, { token: api.tokens.operator });
    expect(fired.status).to.equal(200);
    expect(fired.body.actor).to.equal('operator');
    expect(fired.body.resumed.map((r) => r.task_id)).to.deep.equal(['wait']);
    expect((await ended).state).to.equal('success');
    const xcom = await tdb.database.db.selectFrom('xcom').select('value').where('dag_id', '=', 'api_waits').where('run_id', '=', runId).where('key', '=', 'return_value').executeTakeFirstOrThrow();
    expect((xcom.value as JsonObject)['event']).to.deep.include({ firedBy: 'operator' });
    const after = await call<WaitPageJson>(api.url, 'GET', `/api/v1/triggers?dag_id=api_waits&dag_run_id=${runId}`, { token: api.tokens.viewer });
    expect(after.body.triggers).to.deep.equal([]);
  });

  it('GET /triggers/lateness: a time trigger the triggerer fired shows up with its lateness', async () => {
    const { scheduler } = await startScheduler(tdb.database, BAG);
    await startTriggerer(tdb.database);
    await upsertDags(tdb.database.db, [{ dagId: 'api_waits', fileloc: '' }]);
    const runId = nextRun();
    const since = new Date(Date.now() - 1000).toISOString();
    const ended = waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', 30_000);
    await createDagRun(tdb.database.db, { dagId: 'api_waits', runId, conf: { dueInMs: 1000 }, logicalDate: new Date() });
    expect((await ended).state).to.equal('success');
    const report = await call<{ points: { dag_run_id: string; lateness_ms: number }[]; p50_ms: number | null }>(
      api.url,
      'GET',
      `/api/v1/triggers/lateness?since=${encodeURIComponent(since)}`,
      { token: api.tokens.viewer },
    );
    expect(report.status).to.equal(200);
    const point = report.body.points.find((p) => p.dag_run_id === runId);
    expect(point, JSON.stringify(report.body)).to.not.equal(undefined);
    expect(point?.lateness_ms).to.be.a('number');
    expect(report.body.p50_ms).to.be.a('number');
  });
});
