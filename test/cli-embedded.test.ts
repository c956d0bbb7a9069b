import { expect } from 'chai';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tsflow } from './support/cli.ts';

/* The embedded PostgreSQL's first start, from the command line, on a home nobody used before. */
describe('the embedded server from the command line', () => {
  let home: string;

  before(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'tsflow-test-embedded-cli-'));
    await chmod(home, 0o755); // as root the server runs as `postgres`, which must reach its data here
  });
  after(async () => {
    await tsflow(['db', 'stop'], { TSFLOW_HOME: home, TSFLOW_DATABASE_URL: '' }).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });

  it('says, once, that it is initialising a new data folder, and never prints its password', async function () {
    this.timeout(120_000);
    const env = { TSFLOW_HOME: home, TSFLOW_DATABASE_URL: '' };
    const first = await tsflow(['db', 'migrate'], env, 110_000);
    expect(first.code, first.stderr).to.equal(0);
    const notices = first.stderr.split('\n').filter((l) => l.includes('initialising a new PostgreSQL data folder'));
    expect(notices).to.have.length(1);
    expect(notices[0]).to.match(/^tsflow: initialising a new PostgreSQL data folder in \S+pgdata \(first use of .+; this takes a few seconds\)$/);

    const second = await tsflow(['db', 'status'], env, 110_000);
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stderr).not.to.contain('initialising');

    const { password } = JSON.parse(await readFile(path.join(home, 'embedded-postgres.json'), 'utf8')) as { password: string };
    for (const output of [first.stdout, first.stderr, second.stdout, second.stderr]) expect(output).not.to.contain(password);
  });
});
