import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Schema } from './schema.ts';

export type Db = Kysely<Schema>;

export interface DatabaseOptions {
  /** A postgres:// URL. */
  url: string;
  /** Connections in the pool. @default 10 */
  poolSize?: number;
  /** Shown in pg_stat_activity. @default 'tsflow' */
  applicationName?: string;
  /**
   * Connections kept open however long they sit idle (beyond these, an idle connection closes after
   * 10 s). A daemon keeps the ones its concurrent work needs, so a burst after a quiet hour does not
   * start by forking backends. @default 0
   */
  keepOpen?: number;
}

export interface Database {
  readonly db: Db;
  readonly pool: pg.Pool;
  readonly url: string;
  /** Opens the `keepOpen` connections now, in parallel, instead of on first use. */
  warm(): Promise<void>;
  close(): Promise<void>;
}

const INT8_OID = 20;

/**
 * Parses int8 (our bigserial ids) as numbers instead of strings. Ids stay far below 2^53. Set per
 * pool, not on pg's global type table, so nothing else in the process is affected.
 */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (value: string) => Number(value);
    return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid, 'text');
  },
} as pg.CustomTypesConfig;

export function openDatabase(options: DatabaseOptions): Database {
  const max = options.poolSize ?? 10;
  const keepOpen = Math.min(options.keepOpen ?? 0, max);
  const pool = new pg.Pool({
    connectionString: options.url,
    max,
    application_name: options.applicationName ?? 'tsflow',
    types,
    connectionTimeoutMillis: 10_000,
    min: keepOpen,
  });
  // An idle client losing its connection (server restart) must not crash the process; the pool
  // drops it and the next query opens a fresh one.
  pool.on('error', () => undefined);
  // pg-pool removes its own 'error' listener while a client is checked out, so a backend terminated
  // mid-transaction (pg_terminate_backend, a restart, a proxy closing the socket) would emit
  // 'error' on a client nobody listens to and crash the process. Every client keeps this listener
  // for its whole life; the failure reaches the query that was running as its rejection.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  let closing: Promise<void> | undefined;
  return {
    db,
    pool,
    url: options.url,
    warm: async () => {
      if (pool.totalCount >= keepOpen) return;
      // Holding them all at once: an idle connection is handed out again, not counted twice.
      const opened = await Promise.allSettled(Array.from({ length: keepOpen }, () => pool.connect()));
      for (const result of opened) if (result.status === 'fulfilled') result.value.release();
      const failed = opened.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
    },
    close: () => (closing ??= db.destroy()),
  };
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable database URL>';
  }
}


/** Turns "cannot connect" errors into one line that names the database and what to do. */
export class DatabaseUnreachableError extends Error {
  override name = 'DatabaseUnreachableError';
}

export async function assertReachable(database: Database): Promise<void> {
  try {
    await database.pool.query('SELECT 1');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new DatabaseUnreachableError(
      `cannot reach the database at ${redactUrl(database.url)}: ${reason}. ` +
        'Check TSFLOW_DATABASE_URL, or unset it to use the embedded PostgreSQL.',
      { cause: error },
    );
  }
}
