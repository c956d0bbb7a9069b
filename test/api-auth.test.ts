import { expect } from 'chai';
import { listAudit } from '../src/db/audit-log.ts';
import { call, login, recordApiDags, startApi, type ApiRig } from './support/api.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

describe('API server: authentication, roles, CSRF, login limits', function () {
  this.timeout(60_000);
  let tdb: TestDatabase;
  let api: ApiRig;

  before(async () => {
    tdb = await createTestDatabase();
    await recordApiDags(tdb);
    api = await startApi(tdb.database, { loginLimit: { maxFailures: 3, windowMs: 60_000 } });
  });

  after(async () => {
    await api?.stop();
    await tdb?.drop();
  });

  it('serves /health without credentials, in Airflow\'s shape', async () => {
    const health = await call<{ metadatabase: { status: string }; scheduler: { status: string | null; latest_scheduler_heartbeat: string | null }; triggerer: { status: string | null } }>(
      api.url,
      'GET',
      '/api/v1/health',
    );
    expect(health.status).to.equal(200);
    expect(health.body.metadatabase.status).to.equal('healthy');
    expect(health.body.scheduler).to.include({ status: 'unhealthy', latest_scheduler_heartbeat: null });
    expect(health.body.triggerer.status).to.equal(null);
  });

  it('refuses anonymous requests and unknown tokens with 401 problem details', async () => {
    const anonymous = await call(api.url, 'GET', '/api/v1/dags');
    expect(anonymous.status).to.equal(401);
    expect(anonymous.headers.get('content-type')).to.match(/application\/problem\+json/);
    expect(anonymous.body).to.include({ status: 401, title: 'Unauthorized' });
    expect((await call(api.url, 'GET', '/api/v1/dags', { token: 'tsf_not-a-token' })).status).to.equal(401);
    expect((await call(api.url, 'GET', '/api/v1/dags', { headers: { authorization: 'Basic abc' } })).status).to.equal(401);
    expect((await call(api.url, 'GET', '/api/v1/openapi.json')).status).to.equal(401);
  });

  it('lets a viewer read but not write; an operator writes, and the change is audited', async () => {
    const list = await call<{ dags: { dag_id: string; tags: string[] }[]; total_entries: number }>(api.url, 'GET', '/api/v1/dags', { token: api.tokens.viewer });
    expect(list.status).to.equal(200);
    expect(list.body.dags.map((d) => d.dag_id)).to.deep.equal(['api_dag', 'chatty_dag']);
    expect(list.body.dags[0]?.tags).to.deep.equal(['api']);
    expect(list.body.total_entries).to.equal(2);

    const refused = await call(api.url, 'PATCH', '/api/v1/dags/api_dag', { token: api.tokens.viewer, body: { is_paused: true } });
    expect(refused.status).to.equal(403);
    expect(refused.body['detail']).to.match(/viewer.*operator/);

    const paused = await call<{ is_paused: boolean }>(api.url, 'PATCH', '/api/v1/dags/api_dag', { token: api.tokens.operator, body: { is_paused: true } });
    expect(paused.status).to.equal(200);
    expect(paused.body.is_paused).to.equal(true);
    const { entries } = await listAudit(tdb.database.db, { limit: 10, offset: 0, action: 'dag.pause' });
    expect(entries).to.have.length(1);
    expect(entries[0]).to.include({ username: 'operator', target: 'dag_id=api_dag' });
    expect(entries[0]?.details).to.deep.equal({ is_paused: true, changed: true });
  });

  it('names the field a request got wrong (400)', async () => {
    const tooMany = await call(api.url, 'GET', '/api/v1/dags?limit=500', { token: api.tokens.viewer });
    expect(tooMany.status).to.equal(400);
    expect(tooMany.body['detail']).to.match(/limit/);
    const badBody = await call(api.url, 'PATCH', '/api/v1/dags/api_dag', { token: api.tokens.operator, body: { is_paused: 'maybe' } });
    expect(badBody.status).to.equal(400);
    expect(badBody.body['detail']).to.match(/is_paused/);
  });

  it('signs in with a session cookie (HttpOnly, SameSite=Strict) and refuses state changes without the CSRF token', async () => {
    const response = await fetch(`${api.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'operator', password: 'correct horse battery staple' }),
    });
    expect(response.status).to.equal(200);
    const setCookie = response.headers.get('set-cookie') ?? '';
    expect(setCookie).to.match(/^tsflow_session=/);
    expect(setCookie).to.match(/HttpOnly/i);
    expect(setCookie).to.match(/SameSite=Strict/i);
    expect(setCookie).not.to.match(/Secure/i); // plain http on 127.0.0.1

    const { cookie, csrf } = await login(api.url, 'operator');
    const me = await call<{ user: { username: string; role: string }; csrf_token: string }>(api.url, 'GET', '/api/v1/auth/me', { cookie });
    expect(me.body.user).to.deep.equal({ username: 'operator', role: 'operator' });
    expect(me.body.csrf_token).to.equal(csrf);

    const noToken = await call(api.url, 'PATCH', '/api/v1/dags/api_dag', { cookie, body: { is_paused: false } });
    expect(noToken.status).to.equal(403);
    expect(noToken.body['detail']).to.match(/CSRF/);
    const wrongToken = await call(api.url, 'PATCH', '/api/v1/dags/api_dag', { cookie, csrf: 'x'.repeat(43), body: { is_paused: false } });
    expect(wrongToken.status).to.equal(403);
    const ok = await call(api.url, 'PATCH', '/api/v1/dags/api_dag', { cookie, csrf, body: { is_paused: false } });
    expect(ok.status).to.equal(200);

    expect((await call(api.url, 'POST', '/api/v1/auth/logout', { cookie })).status).to.equal(403);
    expect((await call(api.url, 'POST', '/api/v1/auth/logout', { cookie, csrf })).status).to.equal(204);
    expect((await call(api.url, 'GET', '/api/v1/auth/me', { cookie })).status).to.equal(401);
  });

  it('rate-limits failed logins per username (429 with Retry-After), even for the right password', async () => {
    for (let i = 0; i < 3; i++) {
      const wrong = await call(api.url, 'POST', '/api/v1/auth/login', { body: { username: 'viewer', password: `wrong ${i}` } });
      expect(wrong.status).to.equal(401);
    }
    const limited = await call(api.url, 'POST', '/api/v1/auth/login', { body: { username: 'viewer', password: 'correct horse battery staple' } });
    expect(limited.status).to.equal(429);
    expect(Number(limited.headers.get('retry-after'))).to.be.within(1, 60);
    const { entries } = await listAudit(tdb.database.db, { limit: 10, offset: 0, action: 'auth.login.failed' });
    expect(entries.length).to.be.at.least(3);
    expect(JSON.stringify(entries)).not.to.match(/wrong \d/); // never the password
  });
});
