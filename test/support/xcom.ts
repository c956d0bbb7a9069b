import type { Database } from '../../src/db/database.ts';
import type { TaskInstanceKey } from '../../src/db/schema.ts';

/** A task instance's stored return value (its `return_value` XCom), read straight from the table. */
export async function storedReturnValue(db: Database, key: TaskInstanceKey): Promise<unknown> {
  const row = await db.db
    .selectFrom('xcom')
    .select('value')
    .where('dag_id', '=', key.dagId)
    .where('run_id', '=', key.runId)
    .where('task_id', '=', key.taskId)
    .where('key', '=', 'return_value')
    .executeTakeFirst();
  return row?.value;
}
