import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sql } from 'kysely';
import { Migrator, type Migration, type MigrationProvider } from 'kysely/migration';
import { GRAPHILE_SCHEMA, migrateGraphile, pendingGraphileMigrations } from '../graphile/graphile-schema.ts';
import { redactUrl, type Database } from './database.ts';

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations/', import.meta.url));
const MIGRATION_FILE = /^\d{4}_[a-z0-9_]+\.ts$/;
const MIGRATION_TABLE = 'kysely_migration';

/** Reads `migrations/NNNN_purpose.ts`; only files of that shape count. */
class FolderMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(MIGRATIONS_FOLDER)).filter((f) => MIGRATION_FILE.test(f)).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      migrations[file.replace(/\.ts$/, '')] = (await import(pathToFileURL(path.join(MIGRATIONS_FOLDER, file)).href)) as Migration;
    }
    return migrations;
  }
}

function migrator(database: Database): Migrator {
  return new Migrator({ db: database.db, provider: new FolderMigrationProvider(), migrationTableName: MIGRATION_TABLE });
}

/**
 * Applies every pending migration; returns the names applied. graphile-worker's schema is migrated
 * too (by graphile-worker), whichever executor is configured: a deployment may switch to the
 * graphile executor later, and a schema nobody uses costs nothing.
 */
export async function migrateToLatest(database: Database): Promise<string[]> {
  const { error, results } = await migrator(database).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed on ${redactUrl(database.url)}: ${(error as Error).message}`, { cause: error });
  }
  const graphilePending = await pendingGraphileMigrations(database);
  if (graphilePending !== 0) {
    try {
      await migrateGraphile(database);
    } catch (cause) {
      throw new Error(`graphile-worker's migrations failed on ${redactUrl(database.url)}: ${(cause as Error).message}`, { cause });
    }
  }
  const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  return graphilePending === 0 ? applied : [...applied, `${GRAPHILE_SCHEMA} (graphile-worker's schema)`];
}

export interface SchemaStatus {
  applied: string[];
  pending: string[];
  /** Applied in the database but unknown to this code: the database is newer. */
  unknown: string[];
}

export async function schemaStatus(database: Database): Promise<SchemaStatus> {
  const known = (await migrator(database).getMigrations()).map((m) => m.name);
  const exists = await database.pool.query<{ present: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AS present`,
    [MIGRATION_TABLE],
  );
  const applied = exists.rows[0]?.present
    ? (await database.pool.query<{ name: string }>(`SELECT name FROM ${MIGRATION_TABLE} ORDER BY name`)).rows.map((r) => r.name)
    : [];
  return {
    applied,
    pending: known.filter((name) => !applied.includes(name)),
    unknown: applied.filter((name) => !known.includes(name)),
  };
}

export class SchemaMismatchError extends Error {
  override name = 'SchemaMismatchError';
}

/** Every daemon calls this first: it refuses an unmigrated database, and one migrated by newer code. */
export async function assertSchemaCurrent(database: Database): Promise<void> {
  const status = await schemaStatus(database);
  const where = redactUrl(database.url);
  if (status.unknown.length > 0) {
    throw new SchemaMismatchError(
      `the database at ${where} has migrations this tsflow does not know (${status.unknown.join(', ')}): ` +
        'it was migrated by a newer tsflow; upgrade tsflow before running it against this database.',
    );
  }
  if (status.pending.length > 0) {
    const what = status.applied.length === 0 ? 'is not migrated' : `is missing migrations ${status.pending.join(', ')}`;
    throw new SchemaMismatchError(`the database at ${where} ${what}: run \`tsflow db migrate\` first.`);
  }
}

/** The graphile executor and `tsflow worker` call this too: graphile-worker's schema must be there and current. */
export async function assertGraphileSchemaCurrent(database: Database): Promise<void> {
  const pending = await pendingGraphileMigrations(database);
  if (pending === 0) return;
  const what = pending === null ? `has no ${GRAPHILE_SCHEMA} schema` : `is missing ${pending} of graphile-worker's migrations`;
  throw new SchemaMismatchError(`the database at ${redactUrl(database.url)} ${what} (the graphile executor needs it): run \`tsflow db migrate\` first.`);
}

/** Drops every table (the public schema) and migrates afresh: `tsflow db reset`. */
export async function resetSchema(database: Database): Promise<void> {
  await sql`DROP SCHEMA IF EXISTS graphile_worker CASCADE`.execute(database.db);
  await sql`DROP SCHEMA public CASCADE`.execute(database.db);
  await sql`CREATE SCHEMA public`.execute(database.db);
  await migrateToLatest(database);
}
