import { sql, type Kysely } from 'kysely';

/*
 * `ti_trigger_timeout_idx` was keyed `WHERE state = 'deferred'`, the same predicate as
 * `ti_trigger_idx`, so it was also an index of every deferred row. The event write looks its task
 * instances up by `trigger_id = ANY(ids) AND state = 'deferred'`; on a table not analysed yet (10,000
 * tasks deferred at once, before autovacuum's first look) the planner guessed 15 deferred rows and
 * read all of them through this index, then filtered by trigger id. Holding only the rows that have
 * a timeout, it no longer answers `state = 'deferred'` on its own; the timeout sweep
 * (`trigger_timeout <= now`) and the next-deadline look-up (`min(trigger_timeout)`) imply
 * `trigger_timeout IS NOT NULL` and keep using it. Deferrals without a timeout are no longer in it.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX ti_trigger_timeout_idx`.execute(db);
  await sql`CREATE INDEX ti_trigger_timeout_idx ON task_instance (trigger_timeout) WHERE state = 'deferred' AND trigger_timeout IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX ti_trigger_timeout_idx`.execute(db);
  await sql`CREATE INDEX ti_trigger_timeout_idx ON task_instance (trigger_timeout) WHERE state = 'deferred'`.execute(db);
}
