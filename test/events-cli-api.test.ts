import { expect } from 'chai';
import { sql } from 'kysely';
import { recordConsumers, sendEvent } from '../src/db/events.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { call, login, startApi, type ApiRig } from './support/api.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

interface ListedJson {
  events: { id: number; key: string; payload: unknown; sender: string | null; createdAt: string; consumers: { dagId: string; runId: string; taskId: string; consumedAt: string }[] }[];
  total: number;
}

describe('external events from the CLI (tsflow events send|list) and the API (POST /events/{key}, GET /events)', function () {
  this.timeout(120_000);
  let t: TestDatabase;
  let env: Record<string, string>;
  let api: ApiRig;

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url };
    api = await startApi(t.database);
  });
  after(async () => {
    await api?.stop();
    await t?.drop();
  });

  const count = async (key: string) => (await sql<{ n: number }>`SELECT count(*)::int AS n FROM event WHERE key = ${key}`.execute(t.database.db)).rows[0]?.n;

  it('events send stores the event with its payload and sender; list shows it and who consumed it', async () => {
    const sent = await tsflow(['events', 'send', 'invoice-1', '--payload', '{"total": 12.5, "lines": [1, 2]}', '--as', 'billing', '--json'], env);
    expect(sent.code, sent.stderr).to.equal(0);
    const { id } = JSON.parse(sent.stdout) as { id: number };
    expect(id).to.be.a('number');
    await upsertDags(t.database.db, [{ dagId: 'billing', fileloc: '' }]);
    await createDagRun(t.database.db, { dagId: 'billing', runId: 'r1', conf: {}, logicalDate: new Date() });
    await recordConsumers(t.database.db, [{ eventId: id, task: { dagId: 'billing', runId: 'r1', taskId: 'wait_invoice' } }]);
    await sendEvent(t.database.db, 'invoice-2', null, 'test');

    const listed = await tsflow(['events', 'list', 'invoice-1', '--json'], env);
    expect(listed.code, listed.stderr).to.equal(0);
    const json = JSON.parse(listed.stdout) as ListedJson;
    expect(json.total).to.equal(1);
    expect(json.events[0]).to.deep.include({ id, key: 'invoice-1', payload: { total: 12.5, lines: [1, 2] }, sender: 'billing' });
    expect(json.events[0]?.consumers).to.have.length(1);
    expect(json.events[0]?.consumers[0]).to.deep.include({ dagId: 'billing', runId: 'r1', taskId: 'wait_invoice' });

    const text = await tsflow(['events', 'list'], env);
    expect(text.code, text.stderr).to.equal(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).to.contain('invoice-2').and.contain('not consumed');
    expect(lines[1]).to.contain('invoice-1').and.contain('consumed by billing.wait_invoice@r1');
  });

  it('bad JSON, a bad key or a bad --limit: a clear error, exit non-zero, nothing written', async () => {
    const bad = await tsflow(['events', 'send', 'bad-json', '--payload', '{"total": '], env);
    expect(bad.code).to.not.equal(0);
    expect(errorLines(bad).join('\n')).to.match(/--payload is not valid JSON .*nothing was sent/);
    expect(await count('bad-json')).to.equal(0);
    const noKey = await tsflow(['events', 'send', '', '--payload', '{}'], env);
    expect(noKey.code).to.not.equal(0);
    expect(errorLines(noKey).join('\n')).to.match(/event key '' is not valid/);
    const limit = await tsflow(['events', 'list', '--limit', '0'], env);
    expect(limit.code).to.not.equal(0);
    expect(errorLines(limit).join('\n')).to.match(/--limit must be a whole number from 1 to 1000, got '0'/);
  });

  it('POST /events/{key}: operators send (audited, the user is the sender), viewers cannot; GET /events lists', async () => {
    const key = 'shipment/77 ready';
    const path = `/api/v1/events/${encodeURIComponent(key)}`;
    expect((await call(api.url, 'POST', path, { body: { payload: { a: 1 } } })).status, 'anonymous').to.equal(401);
    expect((await call(api.url, 'POST', path, { body: { payload: { a: 1 } }, token: api.tokens.viewer })).status, 'viewer').to.equal(403);
    expect(await count(key)).to.equal(0);
    const sent = await call<{ event_id: number; sender: string }>(api.url, 'POST', path, { body: { payload: { carrier: 'dhl' } }, token: api.tokens.operator });
    expect(sent.status, JSON.stringify(sent.body)).to.equal(201);
    expect(sent.body.sender).to.equal('operator');
    const audit = await t.database.db.selectFrom('audit_log').selectAll().where('action', '=', 'event.send').executeTakeFirst();
    expect(audit?.username).to.equal('operator');
    expect(audit?.target).to.equal(`key=${key}`);
    expect(audit?.details).to.deep.equal({ eventId: sent.body.event_id });

    // A browser session needs its CSRF token, like every state change.
    const { cookie, csrf } = await login(api.url, 'operator');
    expect((await call(api.url, 'POST', path, { cookie, body: {} })).status).to.equal(403);
    expect((await call(api.url, 'POST', path, { cookie, csrf, body: {} })).status).to.equal(201);

    const listed = await call<{ events: { event_id: number; key: string; payload: unknown; sender: string }[]; total_entries: number }>(
      api.url,
      'GET',
      `/api/v1/events?key=${encodeURIComponent(key)}&limit=1`,
      { token: api.tokens.viewer },
    );
    expect(listed.status).to.equal(200);
    expect(listed.body.total_entries).to.equal(2);
    expect(listed.body.events).to.have.length(1);
    expect(listed.body.events[0]).to.deep.include({ key, payload: {}, sender: 'operator' });

    const badBody = await call(api.url, 'POST', path, { body: { payload: 1, extra: true }, token: api.tokens.operator });
    expect(badBody.status).to.equal(400);
  });
});
