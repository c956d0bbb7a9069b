import { createLogger, type Logger, type LogLevel } from '../common/logger.ts';
import { assertReachable, openDatabase, type Database } from '../db/database.ts';
import { EmbeddedServer } from '../db/embedded/embedded-server.ts';
import { assertSchemaCurrent, migrateToLatest } from '../db/migrations.ts';
import { configureSecretKeys } from './secret-keys.ts';
import type { Settings } from './settings.ts';
import { printNotice } from './notice.ts';
import { waitUntilReachable, type WaitForDatabase } from './wait-for-database.ts';

export interface Runtime {
  readonly settings: Settings;
  readonly logger: Logger;
  readonly database: Database;
  /** Closes the pool, and stops the embedded server if this process started it. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  /** Apply pending migrations first (standalone, `db migrate`); otherwise an unmigrated database is an error. */
  migrate?: boolean;
  /** Skip the schema check (`db reset`, `db status`). */
  skipSchemaCheck?: boolean;
  poolSize?: number;
  /** Connections opened at start and kept open while idle (a daemon's concurrent work). @default 0 */
  keepOpen?: number;
  applicationName?: string;
  /** Log level when TSFLOW_LOG_LEVEL is not set. @default 'info' */
  defaultLogLevel?: LogLevel;
  /**
   * Daemons: wait (logging, with backoff) while the database is unreachable instead of failing at
   * once. An unmigrated database is still an error at once. @default fail at once (one-shot commands)
   */
  waitForDatabase?: WaitForDatabase;
}

/** Connects to `TSFLOW_DATABASE_URL`, or to the embedded server (starting it if needed). */
export async function openRuntime(settings: Settings, options: RuntimeOptions = {}): Promise<Runtime> {
  const logger = createLogger(settings.logLevel ?? options.defaultLogLevel ?? 'info');
  if (!configureSecretKeys(settings) && options.waitForDatabase) {
    logger.info('TSFLOW_SECRET_KEY is not set: trigger kwargs are stored unencrypted, and connections and variables cannot be stored');
  }
  let embedded: EmbeddedServer | undefined;
  let url = settings.databaseUrl;
  if (url === undefined) {
    embedded = new EmbeddedServer({ home: settings.home, logger: logger.child({ component: 'embedded-postgres' }), notice: printNotice });
    url = (await embedded.start()).url;
  }
  const database = openDatabase({ url, poolSize: options.poolSize, keepOpen: options.keepOpen, applicationName: options.applicationName });
  const close = async (): Promise<void> => {
    await database.close();
    await embedded?.stop();
  };
  try {
    if (options.waitForDatabase) await waitUntilReachable(database, logger, options.waitForDatabase);
    else await assertReachable(database);
    if (options.migrate) {
      const applied = await migrateToLatest(database);
      if (applied.length > 0) logger.info({ applied }, 'database migrated');
    } else if (!options.skipSchemaCheck) {
      await assertSchemaCurrent(database);
    }
    await database.warm();
  } catch (error) {
    await close();
    throw error;
  }
  return { settings, logger, database, close };
}

/** Runs `action` with a runtime and always closes it. */
export async function withRuntime<T>(settings: Settings, options: RuntimeOptions, action: (runtime: Runtime) => Promise<T>): Promise<T> {
  const runtime = await openRuntime(settings, options);
  try {
    return await action(runtime);
  } finally {
    await runtime.close();
  }
}
