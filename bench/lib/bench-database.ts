import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { silentLogger } from '../../src/common/logger.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { EmbeddedServer } from '../../src/db/embedded/embedded-server.ts';
import { migrateToLatest } from '../../src/db/migrations.ts';

/** Settings of the embedded server a benchmark starts; printed with every report. */
export const BENCH_SERVER_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: "'1GB'",
  max_connections: '300',
  // The commit time of each write, so lateness is measured from the commit of `scheduled`.
  track_commit_timestamp: 'on',
  // WAL is flushed in the background: a crash loses the last few hundred ms of commits but never
  // corrupts. The common tuning for queue workloads; see bench/RESULTS.md for what it changes.
  synchronous_commit: 'off',
  wal_level: 'minimal',
  max_wal_senders: '0',
  max_wal_size: "'4GB'",
  checkpoint_timeout: "'30min'",
  autovacuum_naptime: "'10s'",
};

export interface BenchDatabase {
  readonly url: string;
  /** A pool for the benchmark driver. */
  readonly database: Database;
  readonly serverVersion: string;
  readonly settings: Readonly<Record<string, string>>;
  /** Whether pg_xact_commit_timestamp works (track_commit_timestamp = on). */
  readonly commitTimestamps: boolean;
  close(): Promise<void>;
}

/**
 * A fresh, migrated database for one scenario: on the server at `adminUrl`
 * (TSFLOW_BENCH_DATABASE_URL, or the test server in smoke mode), else on an embedded server of its
 * own, tuned as above, removed afterwards.
 */
export async function openBenchDatabase(scenario: string, adminUrl: string | undefined): Promise<BenchDatabase> {
  let server: EmbeddedServer | undefined;
  let home: string | undefined;
  if (!adminUrl) {
    home = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bench-'));
    await chmod(home, 0o755);
    server = new EmbeddedServer({ home, logger: silentLogger(), settings: BENCH_SERVER_SETTINGS });
    adminUrl = (await server.start()).url;
  }
  const name = `tsflow_bench_${scenario}_${process.pid}`;
  await admin(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin(adminUrl, `CREATE DATABASE ${name}`);
  const url = withDatabase(adminUrl, name);
  const database = openDatabase({ url, poolSize: 8, applicationName: 'tsflow-bench' });
  await migrateToLatest(database);
  const info = await database.pool.query<{ version: string; track: string }>(
    `SELECT current_setting('server_version') AS version, current_setting('track_commit_timestamp') AS track`,
  );
  const settingNames = Object.keys(BENCH_SERVER_SETTINGS);
  const settingRows = await database.pool.query<{ name: string; setting: string; unit: string | null }>(
    'SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)',
    [settingNames],
  );
  const adminTarget = adminUrl;
  return {
    url,
    database,
    serverVersion: info.rows[0]?.version ?? 'unknown',
    settings: Object.fromEntries(settingRows.rows.map((r) => [r.name, r.unit ? `${r.setting}${r.unit}` : r.setting])),
    commitTimestamps: info.rows[0]?.track === 'on',
    close: async () => {
      await database.close();
      await admin(adminTarget, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await server?.stop();
      if (home) await rm(home, { recursive: true, force: true });
    },
  };
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function admin(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
