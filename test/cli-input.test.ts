import { expect } from 'chai';
import net from 'node:net';
import { CliProcess, stopAllProcesses } from './support/cli-process.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { FIXTURE_DAGS } from './support/rig.ts';

/* Bad input is refused before anything starts, with one line that names the value. */
describe('the tsflow command refuses bad input early', () => {
  let t: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url, TSFLOW_DAGS_FOLDER: FIXTURE_DAGS };
  });
  after(() => t.drop());
  afterEach(stopAllProcesses);

  const jobCount = async () => Number((await t.database.db.selectFrom('job').select(({ fn }) => fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  for (const [args, message] of [
    [['triggerer', '--capacity', '-5'], "--capacity must be a whole number ≥ 1, got '-5'"],
    [['triggerer', '--capacity=-5'], "--capacity must be a whole number ≥ 1, got '-5'"],
    [['scheduler', '--parallelism', '-1'], "--parallelism must be a whole number ≥ 0, got '-1'"],
    [['standalone', '--parallelism=-1'], "--parallelism must be a whole number ≥ 0, got '-1'"],
    [['triggerer', '--poll-interval', '-2'], "--poll-interval must be a number of seconds > 0, got '-2'"],
    [['triggerer', '--startup-timeout', '-1'], "--startup-timeout must be a number of seconds > 0, got '-1'"],
    [['tasks', 'logs', 'd', 't', 'r', '--try', '-1'], "--try must be a whole number ≥ 1, got '-1'"],
    [['triggerer', '--metrics-port', '0'], "--metrics-port must be a port number from 1 to 65535, got '0'"],
    [['triggerer', '--metrics-port', '65536'], "--metrics-port must be a port number from 1 to 65535, got '65536'"],
    [['triggerer', '--metrics-port', '-80'], "--metrics-port must be a port number from 1 to 65535, got '-80'"],
  ] as const) {
    it(`${args.join(' ')}: exit 2, "${message}"`, async () => {
      const before = await jobCount();
      const result = await tsflow([...args], env);
      expect(result.code, result.stderr).to.equal(2);
      expect(errorLines(result)).to.deep.equal([`tsflow: error: ${message}`]);
      expect(result.stderr).not.to.contain('ambiguous');
      expect(await jobCount()).to.equal(before);
    });
  }

  it('a metrics port already in use fails before the job row is written, naming the port', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as net.AddressInfo;
    try {
      const before = await jobCount();
      const result = await tsflow(['triggerer', '--metrics-port', String(port)], env);
      expect(result.code).to.equal(1);
      expect(errorLines(result)).to.deep.equal([`tsflow: error: --metrics-port ${port} on 127.0.0.1 is already in use: choose another port, or stop what listens there`]);
      expect(await jobCount()).to.equal(before);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  it('refuses a database URL that is not PostgreSQL, naming the scheme and never the password', async () => {
    for (const url of ['mysql://admin:hunter2secret@db.example.com/app', 'http://admin:hunter2secret@db.example.com/app?token=qsecret']) {
      const result = await tsflow(['tasks', 'states', 'defer_dag', 'r1'], { TSFLOW_DATABASE_URL: url });
      expect(result.code).to.equal(2);
      const [line] = errorLines(result);
      expect(line).to.contain(`TSFLOW_DATABASE_URL has the scheme '${new URL(url).protocol.slice(0, -1)}'`).and.contain('postgres://');
      expect(result.stderr + result.stdout).not.to.contain('hunter2secret').and.not.to.contain('qsecret');
    }
    const notUrl = await tsflow(['triggerer'], { TSFLOW_DATABASE_URL: 'host=db user=admin password=hunter2secret' });
    expect(notUrl.code).to.equal(2);
    expect(errorLines(notUrl)[0]).to.contain('TSFLOW_DATABASE_URL is not a URL');
    expect(notUrl.stderr).not.to.contain('hunter2secret');
  });

  it('accepts postgresql: as well as postgres:', async () => {
    const url = new URL(t.url);
    url.protocol = 'postgresql:';
    const result = await tsflow(['db', 'status'], { TSFLOW_DATABASE_URL: url.toString() });
    expect(result.code, result.stderr).to.equal(0);
  });

  it('dags trigger --wait warns on stderr when no scheduler is alive, instead of waiting silently', async function () {
    this.timeout(30_000);
    const child = new CliProcess(['dags', 'trigger', 'ok_dag', '--run-id', 'nobody_runs_it', '--wait'], env);
    await child.waitForOutput(/tsflow: warning: no scheduler is alive/);
    const warnings = child.stderr.split('\n').filter((l) => l.startsWith('tsflow: warning:'));
    expect(warnings).to.deep.equal([
      'tsflow: warning: no scheduler is alive (no scheduler job with a heartbeat in the last 30 s); ' +
        'the run stays queued until one starts: run tsflow scheduler (or tsflow standalone)',
    ]);
    expect(child.stdout).to.contain("triggered ok_dag run 'nobody_runs_it'");
    await child.stop();
  });
});
