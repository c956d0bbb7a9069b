import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { silentLogger } from '../../src/common/logger.ts';
import { processAlive } from '../../src/common/process-alive.ts';
import { openDatabase } from '../../src/db/database.ts';
import { EmbeddedServer } from '../../src/db/embedded/embedded-server.ts';
import { migrateToLatest } from '../../src/db/migrations.ts';

/*
 * One PostgreSQL per test run: the embedded server in a temp home, or the server named by
 * TSFLOW_TEST_DATABASE_URL. A template database is migrated once; each test file clones it
 * (test/support/database.ts). Everything is removed at the end.
 */

let server: EmbeddedServer | undefined;
let home: string | undefined;
let cliHome: string | undefined;

/*
 * Where each live interval was created, so a test process that will not exit can say which daemon
 * (heartbeat, LISTEN check, …) was left running. Test-only instrumentation.
 */
const intervals = new Map<unknown, string>();
const realSetInterval = globalThis.setInterval;
const realClearInterval = globalThis.clearInterval;
globalThis.setInterval = ((...args: Parameters<typeof realSetInterval>) => {
  const handle = realSetInterval(...args);
  intervals.set(handle, (new Error().stack ?? '').split('\n').slice(2, 6).join(' <- '));
  return handle;
}) as typeof setInterval;
globalThis.clearInterval = ((handle?: Parameters<typeof realClearInterval>[0]) => {
  intervals.delete(handle);
  realClearInterval(handle);
}) as typeof clearInterval;
// Long timeouts too (a forgotten one keeps the process alive just as well).
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
globalThis.setTimeout = ((callback: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
  const site = (ms ?? 0) >= 1000 ? (new Error().stack ?? '').split('\n').slice(2, 6).join(' <- ') : undefined;
  const handle: NodeJS.Timeout = realSetTimeout(
    (...a: unknown[]) => {
      intervals.delete(handle);
      callback(...a);
    },
    ms,
    ...rest,
  );
  if (site) intervals.set(handle, `timeout ${ms} ms: ${site}`);
  return handle;
}) as typeof setTimeout;
globalThis.clearTimeout = ((handle?: Parameters<typeof realClearTimeout>[0]) => {
  intervals.delete(handle);
  realClearTimeout(handle);
}) as typeof clearTimeout;

/*
 * Root hook: after every test file (in parallel mode, each worker runs its own files) everything the
 * tests started is stopped, so a long timer still pending is a leak (a trigger never cancelled, a
 * daemon never stopped). Fail, naming where each was created, and forget them so the next file is
 * judged on its own.
 */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await new Promise((resolve) => realSetTimeout(resolve, 100));
    const leaks = [...intervals].filter(([handle]) => (handle as NodeJS.Timeout).hasRef?.());
    for (const [handle] of leaks) intervals.delete(handle);
    if (leaks.length > 0) {
      throw new Error(`the tests left ${leaks.length} timer(s) pending after every daemon stopped:\n  ${leaks.map(([, site]) => site).join('\n  ')}`);
    }
  },
};

export async function mochaGlobalSetup(): Promise<void> {
  let adminUrl = process.env['TSFLOW_TEST_DATABASE_URL'];
  if (!adminUrl) {
    await sweepAbandonedServers();
    home = await mkdtemp(path.join(os.tmpdir(), TEST_HOME_PREFIX));
    await writeFile(path.join(home, 'owner.pid'), String(process.pid));
    await chmod(home, 0o755); // as root, the server runs as `postgres` and must reach its data here
    server = new EmbeddedServer({
      home,
      logger: silentLogger(),
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '300' },
    });
    const started = await server.start();
    adminUrl = started.url;
    // For the tests that restart the server under a running task (test/support/server-control.ts).
    process.env['TSFLOW_TEST_DATA_DIR'] = started.dataDir;
  }
  const template = `tsflow_template_${process.pid}`;
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${template}`);
  await adminQuery(adminUrl, `CREATE DATABASE ${template}`);
  const database = openDatabase({ url: withDatabase(adminUrl, template), poolSize: 1 });
  try {
    await migrateToLatest(database);
  } finally {
    await database.close();
  }
  process.env['TSFLOW_TEST_ADMIN_URL'] = adminUrl;
  process.env['TSFLOW_TEST_TEMPLATE'] = template;
  // TSFLOW_HOME for the commands tests run (task logs land under it), never the user's ~/.tsflow.
  cliHome = await mkdtemp(path.join(os.tmpdir(), `${TEST_HOME_PREFIX}home-`));
  await writeFile(path.join(cliHome, 'owner.pid'), String(process.pid));
  process.env['TSFLOW_TEST_HOME'] = cliHome;
}

export async function mochaGlobalTeardown(): Promise<void> {
  const adminUrl = process.env['TSFLOW_TEST_ADMIN_URL'];
  if (adminUrl && process.env['TSFLOW_TEST_DATABASE_URL']) {
    // A shared server: drop what this run created.
    const { rows } = await adminQuery(adminUrl, `SELECT datname FROM pg_database WHERE datname LIKE 'tsflow_t%_${process.pid}%'`);
    for (const row of rows as { datname: string }[]) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${row.datname} WITH (FORCE)`);
  }
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
  if (cliHome) await rm(cliHome, { recursive: true, force: true });
  // If the process still lingers, say what holds it open, then kill it: a hung CI run is worse.
  realSetTimeout(() => {
    console.error(`the test process is still alive 15 s after teardown; open resources: ${process.getActiveResourcesInfo().join(', ')}`);
    for (const [handle, site] of intervals) {
      if ((handle as NodeJS.Timeout).hasRef?.()) console.error(`  still pending: ${site}`);
    }
    process.kill(process.pid, 'SIGKILL');
  }, 15_000).unref();
}

const TEST_HOME_PREFIX = 'tsflow-test-';

/**
 * A test run killed outright (SIGKILL, a CI timeout) cannot stop its server. The next run does: it
 * stops and removes every test server whose owning process is gone.
 */
async function sweepAbandonedServers(): Promise<void> {
  for (const name of await readdir(os.tmpdir()).catch(() => [] as string[])) {
    if (!name.startsWith(TEST_HOME_PREFIX)) continue;
    const abandoned = path.join(os.tmpdir(), name);
    const owner = Number(await readFile(path.join(abandoned, 'owner.pid'), 'utf8').catch(() => ''));
    if (!Number.isInteger(owner) || owner <= 0 || processAlive(owner)) continue;
    const hasServer = await readFile(path.join(abandoned, 'embedded-postgres.json')).then(() => true, () => false);
    if (hasServer) await new EmbeddedServer({ home: abandoned, logger: silentLogger() }).stopAny().catch(() => false);
    await rm(abandoned, { recursive: true, force: true });
  }
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function adminQuery(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}
