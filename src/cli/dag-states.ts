import { createLogger } from '../common/logger.ts';
import { listDagStates, type DagState } from '../db/dag-runs.ts';
import { EmbeddedServer } from '../db/embedded/embedded-server.ts';
import { openRuntime } from './runtime.ts';
import type { Settings } from './settings.ts';

/**
 * The `dag` rows of these DAGs, for `dags list`, or why they cannot be read. Listing DAGs must work
 * without a database, so this never starts the embedded server (only uses it when already running)
 * and turns every database problem into a reason rather than an error.
 */
export async function readDagStates(settings: Settings, dagIds: readonly string[]): Promise<{ states: Map<string, DagState> } | { unavailable: string }> {
  if (settings.databaseUrl === undefined) {
    const embedded = new EmbeddedServer({ home: settings.home, logger: createLogger('silent') });
    const { port } = await embedded.status().catch(() => ({ port: undefined }));
    if (port === undefined) return { unavailable: `the embedded PostgreSQL under ${settings.home} is not running (tsflow db start, or set TSFLOW_DATABASE_URL)` };
  }
  try {
    const runtime = await openRuntime({ ...settings, logLevel: settings.logLevel ?? 'silent' }, { applicationName: 'tsflow-dags-list' });
    try {
      return { states: await listDagStates(runtime.database.db, dagIds) };
    } finally {
      await runtime.close();
    }
  } catch (error) {
    return { unavailable: (error as Error).message };
  }
}
