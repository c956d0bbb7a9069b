import { expect } from 'chai';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Keyring } from '../src/secrets/keyring.ts';
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
    expect(first.stderr.split('\n').filter((l) => l.startsWith(`tsflow: created a secret key in ${path.join(home, 'secret.key')} (mode 0600)`))).to.have.length(1);

    const second = await tsflow(['db', 'status'], env, 110_000);
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stderr).not.to.contain('initialising');

    const { password } = JSON.parse(await readFile(path.join(home, 'embedded-postgres.json'), 'utf8')) as { password: string };
    for (const output of [first.stdout, first.stderr, second.stdout, second.stderr]) expect(output).not.to.contain(password);
  });

  it('creates a secret key under TSFLOW_HOME (mode 0600) on first use, says so once, and encrypts variables with it', async function () {
    this.timeout(120_000);
    const env = { TSFLOW_HOME: home, TSFLOW_DATABASE_URL: '', TSFLOW_SECRET_KEY: undefined };
    const keyFile = path.join(home, 'secret.key');
    // `db migrate` above was the first use: the key exists already.
    expect((await stat(keyFile)).mode & 0o777).to.equal(0o600);
    const key = (await readFile(keyFile, 'utf8')).trim();
    expect(() => Keyring.parse(key, keyFile)).not.to.throw();
    const set = await tsflow(['variables', 'set', 'db_password', 'embedded-secret-1'], env, 110_000);
    expect(set.code, set.stderr).to.equal(0);
    expect(set.stderr).not.to.contain('created a secret key');
    const get = await tsflow(['variables', 'export', path.join(home, 'vars.json')], env, 110_000);
    expect(get.code, get.stderr).to.equal(0);
    expect(JSON.parse(await readFile(path.join(home, 'vars.json'), 'utf8'))).to.deep.equal({ db_password: 'embedded-secret-1' });
    const other = await mkdtemp(path.join(os.tmpdir(), 'tsflow-test-key-'));
    try {
      const fresh = await tsflow(['variables', 'list'], { TSFLOW_HOME: other, TSFLOW_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', TSFLOW_SECRET_KEY: undefined });
      expect(fresh.stderr).not.to.contain('created a secret key'); // with TSFLOW_DATABASE_URL a key is never made up
      const made = await stat(path.join(other, 'secret.key')).then(() => true, () => false);
      expect(made).to.equal(false);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
