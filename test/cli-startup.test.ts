import { expect } from 'chai';
import { CliProcess, freePort, stopAllProcesses, TcpProxy } from './support/cli-process.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { FIXTURE_DAGS } from './support/rig.ts';

/*
 * Daemons started before their database: they wait (logging) and start once it is reachable; a
 * signal while waiting exits 0 at once; --startup-timeout gives up with a clear error.
 */
describe('a daemon started before its database', () => {
  let t: TestDatabase;
  let proxy: TcpProxy | undefined;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  afterEach(async () => {
    await stopAllProcesses();
    await proxy?.close();
    proxy = undefined;
  });

  /** The test database's URL with its port moved to `port` (where nothing listens yet). */
  const urlAt = (port: number): string => {
    const url = new URL(t.url);
    url.port = String(port);
    url.password = 'not-logged-secret';
    return url.toString();
  };
  /** The real database's URL carries the real password; the proxied one must carry it too. */
  const proxiedUrl = (port: number): string => {
    const url = new URL(t.url);
    url.port = String(port);
    return url.toString();
  };
  const target = (): { host: string; port: number } => {
    const url = new URL(t.url);
    return { host: url.hostname, port: Number(url.port || 5432) };
  };
  const jobRows = (pid: number) => t.database.db.selectFrom('job').select(['id', 'job_type', 'state']).where('pid', '=', pid).execute();

  for (const [daemon, args] of [
    ['triggerer', ['triggerer']],
    ['scheduler', ['scheduler', '--dags-folder', FIXTURE_DAGS, '--executor', 'sequential']],
  ] as const) {
    it(`${daemon}: waits, logging without the password, then registers once the database is reachable`, async function () {
      this.timeout(60_000);
      const port = await freePort();
      const child = new CliProcess(args, { TSFLOW_DATABASE_URL: proxiedUrl(port) });
      await child.waitForOutput(/waiting for the database/);
      const line = child.stderr.split('\n').find((l) => l.includes('waiting for the database')) as string;
      const logged = JSON.parse(line) as { level: number; database: string; reason: string; retryInMs: number };
      expect(logged.level).to.equal(40); // warn
      expect(logged.database).to.contain(`127.0.0.1:${port}`);
      expect(logged.reason).to.contain('ECONNREFUSED');
      const password = new URL(t.url).password;
      if (password) expect(child.stderr).not.to.contain(password);
      expect(await jobRows(child.pid)).to.deep.equal([]);

      proxy = await TcpProxy.listen(port, target());
      await child.waitFor(async () => (await jobRows(child.pid)).some((j) => j.job_type === daemon && j.state === 'running'), `a ${daemon} job row`, 45_000, 200);
      const exit = await child.stop();
      expect(exit.code, child.stderr).to.equal(0);
    });
  }

  it('exits 0 at once on SIGTERM while waiting, having written nothing', async function () {
    this.timeout(30_000);
    const port = await freePort();
    const child = new CliProcess(['triggerer'], { TSFLOW_DATABASE_URL: urlAt(port) });
    await child.waitForOutput(/waiting for the database/);
    const exit = await child.stop();
    expect(exit.code, child.stderr).to.equal(0);
    expect(errorLines({ code: exit.code, stdout: child.stdout, stderr: child.stderr })).to.deep.equal([]);
    expect(child.stderr).not.to.contain('not-logged-secret');
    expect(await jobRows(child.pid)).to.deep.equal([]);
  });

  it('gives up after --startup-timeout with one clear error line', async function () {
    this.timeout(30_000);
    const port = await freePort();
    const result = await tsflow(['triggerer', '--startup-timeout', '1'], { TSFLOW_DATABASE_URL: urlAt(port) });
    expect(result.code).to.equal(1);
    const [line] = errorLines(result);
    expect(line).to.contain(`the database at postgres://`).and.contain(`127.0.0.1:${port}`);
    expect(line).to.contain('still unreachable after --startup-timeout 1 s').and.contain('ECONNREFUSED');
    expect(result.stderr).not.to.contain('not-logged-secret');
  });

  it('a one-shot command still fails at once', async () => {
    const port = await freePort();
    const result = await tsflow(['tasks', 'states', 'some_dag', 'some_run'], { TSFLOW_DATABASE_URL: urlAt(port) });
    expect(result.code).to.equal(1);
    expect(result.stderr).not.to.contain('waiting for the database');
    expect(errorLines(result)[0]).to.contain('cannot reach the database');
  });
});
