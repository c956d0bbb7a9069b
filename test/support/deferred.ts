import { sql } from 'kysely';
import type { Database } from '../../src/db/database.ts';
import { createDagRun, upsertDags } from '../../src/db/dag-runs.ts';
import type { TaskInstanceKey } from '../../src/db/schema.ts';
import type { JsonObject } from '../../src/sdk/json.ts';

let runs = 0;

export interface DeferredSet {
  keys: TaskInstanceKey[];
  triggerIds: number[];
}

/**
 * Inserts `count` task instances already deferred on their own trigger rows, in one transaction —
 * what `count` runner defers would leave behind — without a DAG file. With `notify: false` no NOTIFY
 * is sent, so only a poll or a reconnect catch-up can find them.
 */
export async function insertDeferred(
  db: Database,
  count: number,
  kwargs: (i: number) => JsonObject,
  options: { classpath?: string; notify?: boolean; timeoutMs?: number; dagId?: string } = {},
): Promise<DeferredSet> {
  const dagId = options.dagId ?? 'load_dag';
  const runId = `load_${process.pid}_${++runs}`;
  await upsertDags(db.db, [{ dagId, fileloc: '' }]);
  await createDagRun(db.db, { dagId, runId, conf: {}, logicalDate: new Date() });
  await db.db.updateTable('dag_run').set({ state: 'running' }).where('run_id', '=', runId).execute();
  return db.db.transaction().execute(async (trx) => {
    const keys: TaskInstanceKey[] = [];
    const triggerIds: number[] = [];
    for (let i = 0; i < count; i++) {
      const { id } = await trx
        .insertInto('trigger')
        .values({ classpath: options.classpath ?? 'test.ControlledTrigger', kwargs: JSON.stringify(kwargs(i)) })
        .returning('id')
        .executeTakeFirstOrThrow();
      const taskId = `task_${i}`;
      await trx
        .insertInto('task_instance')
        .values({
          dag_id: dagId,
          run_id: runId,
          task_id: taskId,
          state: 'deferred',
          try_number: 1,
          trigger_id: id,
          next_method: 'executeComplete',
          next_kwargs: JSON.stringify({ i }),
          trigger_timeout: options.timeoutMs === undefined ? null : new Date(Date.now() + options.timeoutMs),
        })
        .execute();
      keys.push({ dagId, runId, taskId });
      triggerIds.push(id);
    }
    if (options.notify !== false) await sql`SELECT pg_notify('tsflow_trigger', 'new')`.execute(trx);
    return { keys, triggerIds };
  });
}

/** Task instance states of a set, in order. */
export async function statesOf(db: Database, set: DeferredSet): Promise<(string | null)[]> {
  const rows = await db.db
    .selectFrom('task_instance')
    .select(['task_id', 'state'])
    .where('run_id', '=', set.keys[0]?.runId ?? '')
    .execute();
  const byTask = new Map(rows.map((r) => [r.task_id, r.state]));
  return set.keys.map((k) => byTask.get(k.taskId) ?? null);
}

export { installResumeAudit } from '../../bench/lib/resume-audit.ts';
