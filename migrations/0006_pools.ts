import { sql, type Kysely } from 'kysely';

/**
 * Pools (Airflow's `slot_pool`): a named number of slots that task instances in `queued`, `running`
 * and (when the pool says so) `deferred` occupy, `pool_slots` each, across every scheduler.
 * - `slots = -1` is unlimited. `default_pool` is where unpooled tasks go; it starts at 128 slots
 *   (Airflow's `default_pool_task_slot_count`) and an operator may resize it but not delete it.
 * - No foreign key from task_instance.pool: as in Airflow, a task may name a pool that does not exist
 *   yet; it then waits (the scheduler warns) instead of failing the DAG's runs.
 * - `ti_pool_occupied_idx` serves the per-pool slot count the scheduler makes on every enqueue.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE pool (
    pool text PRIMARY KEY,
    slots integer NOT NULL CHECK (slots >= -1),
    description text,
    include_deferred boolean NOT NULL DEFAULT false
  )`.execute(db);
  await sql`INSERT INTO pool (pool, slots, description) VALUES ('default_pool', 128, 'Default pool')`.execute(db);
  await sql`ALTER TABLE task_instance
    ADD COLUMN pool text NOT NULL DEFAULT 'default_pool',
    ADD COLUMN pool_slots integer NOT NULL DEFAULT 1 CONSTRAINT task_instance_pool_slots_check CHECK (pool_slots >= 1)`.execute(db);
  await sql`CREATE INDEX ti_pool_occupied_idx ON task_instance (pool, state) INCLUDE (pool_slots)
    WHERE state IN ('queued', 'running', 'deferred')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX ti_pool_occupied_idx`.execute(db);
  await sql`ALTER TABLE task_instance DROP COLUMN pool, DROP COLUMN pool_slots`.execute(db);
  await sql`DROP TABLE pool`.execute(db);
}
