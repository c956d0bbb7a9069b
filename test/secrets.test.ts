import { expect } from 'chai';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { Keyring, generateSecretKey } from '../src/secrets/keyring.ts';
import { errorLines, tsflow, type CliResult } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';
import { ScriptedServer } from './support/http-server.ts';

const SECRETS_DAGS = fileURLToPath(new URL('./fixtures/secrets-dags/', import.meta.url));
const PASSWORD = 'Sup3r-s3cret/pass@word';
const TOKEN = 'tok-9f8e7d6c5b4a';

/** Every file under `dir`, as text. */
async function readTree(dir: string): Promise<{ file: string; text: string }[]> {
  const out: { file: string; text: string }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      const file = path.join(entry.parentPath, entry.name);
      out.push({ file, text: await readFile(file, 'utf8') });
    }
  }
  return out;
}

describe('connections, variables and secrets (CLI, real PostgreSQL)', function () {
  // Many CLI processes per test, each a few seconds on a loaded machine.
  this.timeout(300_000);
  let t: TestDatabase;
  let tmp: string;
  const key1 = generateSecretKey();
  const key2 = generateSecretKey();
  let env: Record<string, string>;
  const cli = (args: string[], extra: Record<string, string | undefined> = {}): Promise<CliResult> => tsflow(args, { ...env, ...extra });

  before(async () => {
    t = await createTestDatabase();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tsflow-secrets-'));
    env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_SECRET_KEY: key1, TSFLOW_DAGS_FOLDER: SECRETS_DAGS, TSFLOW_LOGS_FOLDER: path.join(tmp, 'logs') };
  });
  after(async () => {
    await t.drop();
    await rm(tmp, { recursive: true, force: true });
  });

  /** Every row of the tables that could hold a secret, as text. */
  async function allRowsText(): Promise<string> {
    const { rows } = await sql<{ text: string }>`
      SELECT concat_ws(E'\n',
        (SELECT string_agg(row_to_json(x)::text, E'\n') FROM trigger x),
        (SELECT string_agg(row_to_json(x)::text, E'\n') FROM task_instance x),
        (SELECT string_agg(row_to_json(x)::text, E'\n') FROM xcom x),
        (SELECT string_agg(row_to_json(x)::text, E'\n') FROM connection x),
        (SELECT string_agg(row_to_json(x)::text, E'\n') FROM variable x),
        (SELECT string_agg(row_to_json(x)::text, E'\n') FROM dag_run x)) AS text`.execute(t.database.db);
    return rows[0]?.text ?? '';
  }

  it('round-trips connections and variables through the CLI, storing no plaintext and printing no secret', async () => {
    const uri = `http://bot:${encodeURIComponent(PASSWORD)}@127.0.0.1:9/base?X-Team=data&api_key=k3y-in-extra`;
    const added = await cli(['connections', 'add', 'round_trip', '--uri', uri, '--description', 'for the test']);
    expect(added.code, added.stderr).to.equal(0);
    const again = await cli(['connections', 'add', 'round_trip', '--uri', uri]);
    expect(again.code).to.equal(2);
    expect(errorLines(again)[0]).to.contain("connection 'round_trip' already exists");
    const byField = await cli(['connections', 'add', 'by_field', '--conn-type', 'postgres', '--host', 'db.internal', '--port', '5432', '--login', 'etl', '--password', PASSWORD, '--schema', 'warehouse']);
    expect(byField.code, byField.stderr).to.equal(0);

    const got = await cli(['connections', 'get', 'round_trip', '--json']);
    expect(got.code, got.stderr).to.equal(0);
    expect(JSON.parse(got.stdout)).to.deep.equal({
      conn_id: 'round_trip',
      conn_type: 'http',
      description: 'for the test',
      host: '127.0.0.1',
      port: 9,
      login: 'bot',
      password: '***',
      schema: 'base',
      extra: { 'X-Team': 'data', api_key: '***' },
      source: 'database',
    });
    const listed = await cli(['connections', 'list', '--json']);
    expect((JSON.parse(listed.stdout) as { conn_id: string }[]).map((c) => c.conn_id)).to.deep.equal(['by_field', 'round_trip']);
    const text = await cli(['connections', 'get', 'by_field']);
    expect(text.stdout).to.match(/login\s+etl/).and.match(/password\s+\*\*\*/);

    expect((await cli(['variables', 'set', 'api_token', TOKEN])).code).to.equal(0);
    expect((await cli(['variables', 'set', 'region', 'eu-west', '--description', 'where'])).code).to.equal(0);
    expect((await cli(['variables', 'get', 'region'])).stdout.trim()).to.equal('eu-west');
    const secretVar = await cli(['variables', 'get', 'api_token']);
    expect(secretVar.stdout.trim()).to.equal('***');
    const varList = await cli(['variables', 'list', '--json']);
    expect(JSON.parse(varList.stdout)).to.deep.equal([{ key: 'api_token', description: null }, { key: 'region', description: 'where' }]);

    for (const result of [added, got, listed, text, secretVar, varList]) {
      expect(result.stdout + result.stderr).not.to.contain(PASSWORD).and.not.contain(encodeURIComponent(PASSWORD)).and.not.contain(TOKEN);
    }

    // What is stored: envelopes, never the values.
    const stored = await allRowsText();
    expect(stored).not.to.contain(PASSWORD).and.not.contain(encodeURIComponent(PASSWORD)).and.not.contain(TOKEN).and.not.contain('k3y-in-extra');
    const conn = await t.database.db.selectFrom('connection').selectAll().where('conn_id', '=', 'round_trip').executeTakeFirstOrThrow();
    expect(conn.password).to.match(/^v1:[0-9a-f]{8}:/);
    expect(conn.extra).to.match(/^v1:/);
    expect(conn.login).to.equal('bot');
    const variable = await t.database.db.selectFrom('variable').select('val').where('key', '=', 'api_token').executeTakeFirstOrThrow();
    expect(variable.val).to.match(/^v1:/);

    // Export holds the secrets (mode 0600); import brings them back after a delete.
    const exported = path.join(tmp, 'connections.json');
    expect((await cli(['connections', 'export', exported])).code).to.equal(0);
    expect((await stat(exported)).mode & 0o777).to.equal(0o600);
    expect(JSON.parse(await readFile(exported, 'utf8'))['round_trip']).to.deep.include({ password: PASSWORD, extra: { 'X-Team': 'data', api_key: 'k3y-in-extra' } });
    const varsFile = path.join(tmp, 'variables.json');
    expect((await cli(['variables', 'export', varsFile])).code).to.equal(0);
    expect(JSON.parse(await readFile(varsFile, 'utf8'))).to.deep.equal({ api_token: TOKEN, region: 'eu-west' });
    expect((await cli(['connections', 'delete', 'round_trip'])).code).to.equal(0);
    expect((await cli(['variables', 'delete', 'region'])).code).to.equal(0);
    const missing = await cli(['connections', 'get', 'round_trip']);
    expect(missing.code).to.equal(1);
    expect(errorLines(missing)[0]).to.contain("connection 'round_trip' is not defined").and.contain('TSFLOW_CONN_ROUND_TRIP');
    const imported = await cli(['connections', 'import', exported]);
    expect(imported.stdout).to.contain('1 connection(s) stored; 1 skipped because they exist (--overwrite replaces them): by_field');
    expect((await cli(['variables', 'import', varsFile])).code).to.equal(0);
    expect(JSON.parse((await cli(['connections', 'get', 'round_trip', '--json'])).stdout)).to.include({ host: '127.0.0.1', login: 'bot' });
    expect((await cli(['variables', 'get', 'region'])).stdout.trim()).to.equal('eu-west');
  });

  it('names the wrong part of a malformed --uri, without echoing the password', async () => {
    const badPort = await cli(['connections', 'add', 'bad', '--uri', `http://bot:${PASSWORD}x@host:80a/x`]);
    expect(badPort.code).to.equal(2);
    expect(errorLines(badPort)[0]).to.contain('--uri: the port is not a number from 1 to 65535').and.contain('percent-encode');
    const highPort = await cli(['connections', 'add', 'bad', '--uri', 'http://bot:pw@host:99999/x']);
    expect(errorLines(highPort)[0]).to.contain("--uri: the port '99999' is not a number from 1 to 65535");
    const noScheme = await cli(['connections', 'add', 'bad', '--uri', 'host:5432']);
    expect(errorLines(noScheme)[0]).to.contain('the scheme (connection type) is missing');
    const badEscape = await cli(['connections', 'add', 'bad', '--uri', 'http://bot:%zzsecretpart@host']);
    expect(errorLines(badEscape)[0]).to.contain('the password is not valid percent-encoding').and.not.contain('secretpart');
    for (const r of [badPort, noScheme, badEscape]) expect(r.stderr).not.to.contain(PASSWORD);
  });

  it('lets TSFLOW_CONN_<ID> and TSFLOW_VAR_<KEY> override the database', async () => {
    const got = await cli(['connections', 'get', 'round_trip', '--json'], { TSFLOW_CONN_ROUND_TRIP: 'https://other:env-password-1@env.example.com:8443' });
    expect(JSON.parse(got.stdout)).to.deep.include({ host: 'env.example.com', port: 8443, login: 'other', password: '***', source: 'environment', conn_type: 'https' });
    expect(got.stdout).not.to.contain('env-password-1');
    const json = await cli(['connections', 'get', 'only_env', '--json'], { TSFLOW_CONN_ONLY_ENV: JSON.stringify({ conn_type: 'postgres', host: 'pg', port: 5432 }) });
    expect(JSON.parse(json.stdout)).to.deep.include({ conn_type: 'postgres', host: 'pg', source: 'environment' });
    expect((await cli(['variables', 'get', 'region'], { TSFLOW_VAR_REGION: 'us-east' })).stdout.trim()).to.equal('us-east');
  });

  it('rotates every value (and plain trigger rows) to the first key, and names a key that is missing', async () => {
    // A trigger row written before encryption existed: plain JSON text.
    const { id } = await t.database.db.insertInto('trigger').values({ classpath: 'tsflow.triggers.TimeDeltaTrigger', kwargs: JSON.stringify({ moment: 'x' }) }).returning('id').executeTakeFirstOrThrow();
    const rotated = await cli(['rotate-secrets'], { TSFLOW_SECRET_KEY: `${key2},${key1}` });
    expect(rotated.code, rotated.stderr).to.equal(0);
    const newId = Keyring.parse(key2, 'k').primaryKeyId;
    expect(rotated.stdout).to.contain(`re-encrypted under key ${newId}: 2 connection(s), 2 variable(s), 1 trigger(s)`);
    const trigger = await t.database.db.selectFrom('trigger').select('kwargs').where('id', '=', id).executeTakeFirstOrThrow();
    expect(trigger.kwargs).to.match(new RegExp(`^v1:${newId}:`));
    // Only the new key now: every value still reads.
    const onlyNew = { TSFLOW_SECRET_KEY: key2 };
    expect((await cli(['variables', 'get', 'region'], onlyNew)).stdout.trim()).to.equal('eu-west');
    const exported = path.join(tmp, 'after-rotation.json');
    expect((await cli(['connections', 'export', exported], onlyNew)).code).to.equal(0);
    expect(JSON.parse(await readFile(exported, 'utf8'))['by_field']).to.include({ password: PASSWORD });
    const listing = await cli(['triggers', 'list', '--json'], onlyNew);
    expect(JSON.parse(listing.stdout)[0]).to.deep.include({ kwargs: { moment: 'x' } });
    // The old key alone: the error names the key the values need.
    const oldOnly = await cli(['variables', 'get', 'region'], { TSFLOW_SECRET_KEY: key1 });
    expect(oldOnly.code).to.equal(1);
    expect(errorLines(oldOnly)[0]).to.contain(`variable 'region' is encrypted under key ${newId}, which is not among the keys of TSFLOW_SECRET_KEY`);
    await t.database.db.deleteFrom('trigger').where('id', '=', id).execute();
    env['TSFLOW_SECRET_KEY'] = key2;
  });

  it('refuses to store a secret without a key, and a malformed key, with errors naming TSFLOW_SECRET_KEY', async () => {
    const noKey = await cli(['variables', 'set', 'x', 'y'], { TSFLOW_SECRET_KEY: undefined });
    expect(noKey.code).to.equal(1);
    expect(errorLines(noKey)[0]).to.contain('TSFLOW_SECRET_KEY is not set, so secrets cannot be stored with TSFLOW_DATABASE_URL');
    const bad = await cli(['connections', 'list'], { TSFLOW_SECRET_KEY: `${key2},not-a-key` });
    expect(bad.code).to.equal(2);
    expect(errorLines(bad)[0]).to.contain('key 2 of TSFLOW_SECRET_KEY is not a key').and.not.contain(key2);
    const generated = await cli(['secrets', 'generate-key']);
    expect(() => Keyring.parse(generated.stdout.trim(), 'k')).not.to.throw();
  });

  describe('in DAGs and triggers', () => {
    let server: ScriptedServer;
    let ready = false;
    const expected = `Basic ${Buffer.from(`bot:${PASSWORD}`).toString('base64')}`;

    before(async () => {
      server = await ScriptedServer.start((_n, request) => {
        if (request.headers['authorization'] !== expected) return { status: 401, body: 'bad credentials' };
        return ready ? { status: 200, body: { state: 'ready' } } : { status: 404, body: 'not yet' };
      });
      const uri = `http://bot:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}`;
      const added = await cli(['connections', 'add', 'secure_api', '--uri', uri]);
      expect(added.code, added.stderr).to.equal(0);
    });
    after(() => server.close());

    it('authenticates an HttpSensor through httpConnId while no row, log line or output holds the password', async () => {
      const run = cli(['standalone', '--run', 'secrets_http', '--parallelism', '2']);
      // While it waits, the trigger row holds ciphertext that names the connection, not the secret.
      await eventually(async () => (await t.database.db.selectFrom('trigger').select('id').execute()).length === 1, 'the deferral', 60_000);
      const row = await t.database.db.selectFrom('trigger').selectAll().executeTakeFirstOrThrow();
      expect(row.kwargs).to.match(/^v1:/);
      const listing = await cli(['triggers', 'list', '--json']);
      expect(JSON.parse(listing.stdout)[0].kwargs).to.deep.include({ httpConnId: 'secure_api', endpoint: '/ready', url: '' });
      await eventually(async () => server.requests.length >= 1, 'a poll', 30_000);
      ready = true;
      const result = await run;
      expect(result.code, result.stdout + result.stderr).to.equal(0);
      expect(server.requests.every((r) => r.headers['authorization'] === expected)).to.equal(true);
      expect(server.requests.at(-1)?.url).to.equal('/ready');

      expect(result.stdout + result.stderr).not.to.contain(PASSWORD);
      const stored = await allRowsText();
      expect(stored).not.to.contain(PASSWORD).and.not.contain(encodeURIComponent(PASSWORD)).and.not.contain(expected);
      const xcom = await t.database.db.selectFrom('xcom').select('value').where('task_id', '=', 'leak').executeTakeFirstOrThrow();
      expect(xcom.value).to.deep.equal({ region: 'eu-west', fallback: 'the-default' });
      const logs = await readTree(path.join(tmp, 'logs'));
      const leakLog = logs.find((l) => l.file.includes(`${path.sep}leak${path.sep}`));
      expect(leakLog?.text).to.contain('the password is *** and the URL http://bot:***@example.com/');
      expect(leakLog?.text).to.contain('the token is ***').and.contain('registered: *** is masked');
      for (const log of logs) {
        expect(log.text, log.file).not.to.contain(PASSWORD).and.not.contain(encodeURIComponent(PASSWORD)).and.not.contain(TOKEN).and.not.contain('custom-secret-value-42');
      }
    });

    it('tests a connection: an authenticated request for http, a TCP connect otherwise', async () => {
      const ok = await cli(['connections', 'test', 'secure_api']);
      expect(ok.code, ok.stderr).to.equal(0);
      expect(ok.stdout).to.match(/connection 'secure_api': ok — GET http:\/\/127\.0\.0\.1:\d+\/ answered (200|404)/);
      expect(server.requests.at(-1)?.headers['authorization']).to.equal(expected);
      const refused = await cli(['connections', 'test', 'closed'], { TSFLOW_CONN_CLOSED: 'postgres://u:pw-never-shown@127.0.0.1:1/db' });
      expect(refused.code).to.equal(1);
      expect(refused.stdout).to.contain("connection 'closed': failed — 127.0.0.1:1: ECONNREFUSED");
      const wrong = await cli(['connections', 'test', 'wrong'], { TSFLOW_CONN_WRONG: `http://bot:wrong-password@127.0.0.1:${server.port}` });
      expect(wrong.code).to.equal(1);
      expect(wrong.stdout).to.contain('answered 401: the login or password is refused').and.not.contain('wrong-password');
    });

    it('pokes with the connection on the worker too (deferrable: false)', async () => {
      const result = await cli(['standalone', '--run', 'secrets_poke']);
      expect(result.code, result.stdout + result.stderr).to.equal(0);
      expect(await allRowsText()).not.to.contain(PASSWORD);
    });

    it('masks a secret in a failed task\'s error and names an unknown connection id', async () => {
      const failed = await cli(['standalone', '--run', 'secrets_fail']);
      expect(failed.code).to.equal(1);
      const ti = await t.database.db.selectFrom('task_instance').select(['state', 'error']).where('dag_id', '=', 'secrets_fail').executeTakeFirstOrThrow();
      expect(ti).to.deep.equal({ state: 'failed', error: 'Error: login refused for bot:***' });
      expect(failed.stdout + failed.stderr).not.to.contain(PASSWORD);
      const unknown = await cli(['standalone', '--run', 'secrets_unknown']);
      expect(unknown.code).to.equal(1);
      const error = (await t.database.db.selectFrom('task_instance').select('error').where('dag_id', '=', 'secrets_unknown').executeTakeFirstOrThrow()).error;
      expect(error).to.contain("connection 'no_such_conn' is not defined").and.contain('TSFLOW_CONN_NO_SUCH_CONN');
      for (const log of await readTree(path.join(tmp, 'logs'))) expect(log.text, log.file).not.to.contain(PASSWORD);
    });
  });
});
