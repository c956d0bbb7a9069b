import { sql, type Kysely } from 'kysely';

/**
 * Which scheduler queued each task instance, so a live scheduler can hand a dead one's `queued` rows
 * back to `scheduled` once that scheduler's heartbeat is past the health threshold (seconds), rather
 * than after the 600 s queued timeout. No foreign key: job rows are never deleted while referenced,
 * and a key check would tax every enqueue.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE task_instance ADD COLUMN queued_by_job_id bigint`.execute(db);
  await sql`CREATE INDEX ti_queued_by_idx ON task_instance (queued_by_job_id) WHERE state = 'queued'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX ti_queued_by_idx`.execute(db);
  await sql`ALTER TABLE task_instance DROP COLUMN queued_by_job_id`.execute(db);
}
