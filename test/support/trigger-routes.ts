import { sql } from 'kysely';
import { createDagRun, upsertDags } from '../../src/db/dag-runs.ts';
import type { Database } from '../../src/db/database.ts';
import { createTaskInstances } from '../../src/db/task-instances.ts';

/** The triggers routes and the least role each needs (the OpenAPI test of api-routes lists them too). */
export const TRIGGER_ROUTES: readonly (readonly [string, string, 'viewer' | 'operator'])[] = [
  ['GET', '/api/v1/triggers', 'viewer'],
  ['GET', '/api/v1/triggers/lateness', 'viewer'],
  ['POST', '/api/v1/triggers/{trigger_id}/fire', 'operator'],
  ['POST', '/api/v1/triggers/{trigger_id}/cancel', 'operator'],
  ['POST', '/api/v1/triggers/{trigger_id}/extend', 'operator'],
];

/**
 * A pending wait as a deferral leaves it, written directly: a run of `dagId` with one task instance
 * deferred on a DateTimeTrigger due in an hour (timeout in two), not claimed by any triggerer.
 */
export async function insertPendingWait(database: Database, dagId: string, runId: string, taskId = 'wait'): Promise<number> {
  const db = database.db;
  await upsertDags(db, [{ dagId, fileloc: '' }]);
  await createDagRun(db, { dagId, runId, conf: {}, logicalDate: new Date() });
  await createTaskInstances(db, dagId, runId, [{ taskId, maxTries: 0, priorityWeight: 1, queue: 'default' }]);
  const moment = new Date(Date.now() + 3_600_000).toISOString();
  const { id } = await db
    .insertInto('trigger')
    .values({ classpath: 'tsflow.triggers.DateTimeTrigger', kwargs: JSON.stringify({ moment }) })
    .returning('id')
    .executeTakeFirstOrThrow();
  await sql`
    UPDATE task_instance SET state = 'deferred', try_number = 1, trigger_id = ${id}, next_method = 'executeComplete',
      next_kwargs = '{}'::jsonb, trigger_timeout = now() + interval '2 hours'
    WHERE dag_id = ${dagId} AND run_id = ${runId} AND task_id = ${taskId}`.execute(db);
  return id;
}
