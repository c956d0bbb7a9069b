import { sql, type Kysely } from 'kysely';

/*
 * The graphile executor (issue 13). graphile-worker's own tables live in schema `graphile_worker`,
 * migrated by graphile-worker itself (`tsflow db migrate` runs both); this adds tsflow's side:
 * - `job` rows of `tsflow worker`s name the queues they take (`queues`) and the graphile-worker
 *   worker ids they lock jobs with (`graphile_worker_ids`), so a scheduler that finds a worker dead
 *   can release its jobs (`graphile_worker.force_unlock_workers`).
 * - `task_instance.worker_job_id`: the `tsflow worker` that took the task instance's current job
 *   (set when it claims the job, before the try starts), so a dead worker's tries can be found
 *   even when it died before its task process wrote `running`.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE job ADD COLUMN queues text[], ADD COLUMN graphile_worker_ids text[]`.execute(db);
  await sql`ALTER TABLE task_instance ADD COLUMN worker_job_id integer`.execute(db);
  await sql`CREATE INDEX ti_worker_job_idx ON task_instance (worker_job_id) WHERE state IN ('queued', 'running')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX ti_worker_job_idx`.execute(db);
  await sql`ALTER TABLE task_instance DROP COLUMN worker_job_id`.execute(db);
  await sql`ALTER TABLE job DROP COLUMN queues, DROP COLUMN graphile_worker_ids`.execute(db);
}
