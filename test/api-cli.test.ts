import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { hashPassword } from '../src/api/credentials.ts';
import { createUser } from '../src/db/api-users.ts';
import { BIN, tsflow } from './support/cli.ts';
import { CliProcess, freePort, stopAllProcesses, TcpProxy } from './support/cli-process.ts';
import { API_DAGS, call, recordApiDags } from './support/api.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';

/** `tsflow ARGS` with `input` piped on stdin. */
function tsflowWithInput(args: string[], input: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, TSFLOW_HOME: process.env['TSFLOW_TEST_HOME'], TSFLOW_LOG_LEVEL: 'warn', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Reads an event stream into `text` until the stream ends. */
function collect(response: Response): { text: () => string; ended: Promise<void> } {
  let text = '';
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const ended = (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return;
      text += decoder.decode(value, { stream: true });
    }
  })();
  return { text: () => text, ended };
}

describe('tsflow users and tsflow api-server (processes)', function () {
  this.timeout(180_000);
  let tdb: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    tdb = await createTestDatabase();
    await recordApiDags(tdb);
    env = { TSFLOW_DATABASE_URL: tdb.url };
  });

  afterEach(() => stopAllProcesses());

  after(async () => {
    await tdb?.drop();
  });

  it('creates users from a piped password, refuses an empty one and an unknown role, lists them', async () => {
    const created = await tsflowWithInput(['users', 'create', '--username', 'alice', '--role', 'admin'], 's3cret-pass\n', env);
    expect(created.code, created.stderr).to.equal(0);
    expect(created.stdout).to.match(/created user 'alice' with role admin/);
    const stored = await tdb.database.db.selectFrom('api_user').select('password_hash').where('username', '=', 'alice').executeTakeFirstOrThrow();
    expect(stored.password_hash).to.match(/^scrypt\$/);
    expect(stored.password_hash).not.to.include('s3cret-pass');

    const empty = await tsflow(['users', 'create', '--username', 'bob', '--role', 'viewer'], env);
    expect(empty.code).to.equal(2);
    expect(empty.stderr).to.match(/password is empty/);
    const badRole = await tsflowWithInput(['users', 'create', '--username', 'bob', '--role', 'superuser'], 'x\n', env);
    expect(badRole.code).to.equal(2);
    expect(badRole.stderr).to.match(/unknown role 'superuser': choose one of viewer, operator, admin/);
    const again = await tsflowWithInput(['users', 'create', '--username', 'alice', '--role', 'viewer'], 'x\n', env);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/user 'alice' already exists/);

    const list = await tsflow(['users', 'list', '--json'], env);
    expect(JSON.parse(list.stdout).map((u: { username: string; role: string }) => [u.username, u.role])).to.deep.equal([['alice', 'admin']]);
  });

  it('serves the API with a token from tsflow users token, answers 503 while the database is away, recovers, and stops cleanly on SIGTERM', async () => {
    await createUser(tdb.database.db, 'carol', 'viewer', await hashPassword('pw'));
    const token = (await tsflow(['users', 'token', 'carol'], env)).stdout.trim();
    expect(token).to.match(/^tsf_[A-Za-z0-9_-]{43}$/);
    const target = new URL(tdb.url);
    const proxyPort = await freePort();
    let proxy = await TcpProxy.listen(proxyPort, { host: target.hostname, port: Number(target.port) });
    const viaProxy = new URL(tdb.url);
    viaProxy.port = String(proxyPort);
    const port = await freePort();
    const server = new CliProcess(['api-server', '--port', String(port)], { TSFLOW_DATABASE_URL: viaProxy.toString() });
    try {
      await server.waitForOutput(/listening on http:\/\/127\.0\.0\.1:\d+\/api\/v1/);
      const base = `http://127.0.0.1:${port}`;
      expect((await call(base, 'GET', '/api/v1/dags', { token })).status).to.equal(200);
      expect((await call(base, 'GET', '/api/v1/dags')).status).to.equal(401);
      const stream = collect(await fetch(`${base}/api/v1/stream`, { headers: { authorization: `Bearer ${token}` } }));

      await proxy.close();
      const during = await call(base, 'GET', '/api/v1/dags', { token });
      expect(during.status).to.equal(503);
      expect(during.headers.get('retry-after')).to.equal('5');
      const health = await call<{ metadatabase: { status: string } }>(base, 'GET', '/api/v1/health');
      expect(health.body.metadatabase.status).to.equal('unhealthy');

      proxy = await TcpProxy.listen(proxyPort, { host: target.hostname, port: Number(target.port) });
      await eventually(async () => (await call(base, 'GET', '/api/v1/dags', { token })).status === 200, 'the API to answer again', 30_000, 200);
      await eventually(async () => /event: reconnected/.test(stream.text()), 'the event stream to say it reconnected', 30_000, 100);
      expect(server.running).to.equal(true);

      const { code } = await server.stop();
      expect(code).to.equal(0);
      await stream.ended; // the server ended the open stream instead of waiting on it
    } finally {
      await server.stop();
      await proxy.close();
    }
  });

  it('forgets a deleted user\'s tokens', async () => {
    await createUser(tdb.database.db, 'dave', 'viewer', await hashPassword('pw'));
    const token = (await tsflow(['users', 'token', 'dave'], env)).stdout.trim();
    const port = await freePort();
    const server = new CliProcess(['api-server', '--port', String(port)], env);
    await server.waitForOutput(/listening on/);
    const base = `http://127.0.0.1:${port}`;
    expect((await call(base, 'GET', '/api/v1/auth/me', { token })).status).to.equal(200);
    expect((await tsflow(['users', 'delete', 'dave'], env)).code).to.equal(0);
    expect((await call(base, 'GET', '/api/v1/auth/me', { token })).status).to.equal(401);
    const unknown = await tsflow(['users', 'token', 'dave'], env);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.match(/user 'dave' does not exist/);
  });

  it('starts the API server inside standalone and prints its URL', async () => {
    const port = await freePort();
    const standalone = new CliProcess(['standalone', '--dags-folder', API_DAGS, '--api-port', String(port), '--parallelism', '1'], env);
    await standalone.waitForOutput(/API server at http:\/\/127\.0\.0\.1:(\d+)\/api\/v1/, 60_000);
    expect(standalone.stdout).to.include(`127.0.0.1:${port}`);
    const health = await call<{ scheduler: { status: string } }>(`http://127.0.0.1:${port}`, 'GET', '/api/v1/health');
    expect(health.status).to.equal(200);
    await eventually(async () => (await call<{ scheduler: { status: string } }>(`http://127.0.0.1:${port}`, 'GET', '/api/v1/health')).body.scheduler.status === 'healthy', 'a healthy scheduler', 30_000, 200);
    expect((await standalone.stop()).code).to.equal(0);
  });
});
