import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Logger as GraphileLogger, runMigrations } from 'graphile-worker';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';

/*
 * graphile-worker's schema (`graphile_worker`), next to tsflow's: migrated by graphile-worker's own
 * `runMigrations` whenever tsflow migrates, checked by the daemons that use it.
 */

export const GRAPHILE_SCHEMA = 'graphile_worker';

/** graphile-worker's log lines, as pino lines of the given logger (its debug chatter at debug). */
export function graphileLogger(logger: Logger): GraphileLogger {
  return new GraphileLogger((scope) => (level, message, meta) => {
    const fields = { ...scope, ...(meta ?? {}) };
    if (level === 'error') logger.error(fields, message);
    else if (level === 'warning') logger.warn(fields, message);
    else if (level === 'info') logger.info(fields, message);
    else logger.debug(fields, message);
  });
}

/** Brings `graphile_worker` to the installed graphile-worker's latest schema (a no-op when it is). */
export async function migrateGraphile(database: Database, logger?: Logger): Promise<void> {
  await runMigrations({
    pgPool: database.pool,
    schema: GRAPHILE_SCHEMA,
    ...(logger ? { logger: graphileLogger(logger) } : { logger: new GraphileLogger(() => () => undefined) }),
  });
}

/** How many migrations the installed graphile-worker ships (sql/NNNNNN.sql). */
function knownGraphileMigrations(): number {
  const require = createRequire(import.meta.url);
  // Its package exports only the entry (dist/index.js); the migrations sit in sql/ beside dist/.
  const sqlFolder = path.join(path.dirname(require.resolve('graphile-worker')), '..', 'sql');
  return readdirSync(sqlFolder).filter((f) => /^\d{6}\.sql$/.test(f)).length;
}

/** The graphile-worker migrations not yet applied (0 when current), or null when the schema is missing. */
export async function pendingGraphileMigrations(database: Database): Promise<number | null> {
  const { rows } = await database.pool.query<{ present: boolean }>(`SELECT to_regclass('${GRAPHILE_SCHEMA}.migrations') IS NOT NULL AS present`);
  if (!rows[0]?.present) return null;
  const applied = await database.pool.query<{ n: number }>(`SELECT coalesce(max(id), 0)::int AS n FROM ${GRAPHILE_SCHEMA}.migrations`);
  return Math.max(0, knownGraphileMigrations() - (applied.rows[0]?.n ?? 0));
}
