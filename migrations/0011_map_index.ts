import { sql, type Kysely } from 'kysely';

/*
 * Dynamic task mapping (issue 16): a task instance is keyed (dag_id, run_id, task_id, map_index), as
 * in Airflow. An unmapped task instance has map_index -1, the column's default, so every existing row
 * stays valid and keeps its meaning. XComs gain the same column: each map index of a mapped task
 * pushes its own `return_value`.
 *
 * `max_active_tis_per_dag` (Airflow's task-level limit, copied from the DAG onto each row when the
 * run's task instances are created) caps how many task instances of one task — in practice, map
 * indexes of one mapped task — are queued or running at once across the DAG's runs; null: no cap.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE xcom DROP CONSTRAINT xcom_task_instance_fkey`.execute(db);
  await sql`ALTER TABLE xcom DROP CONSTRAINT xcom_pkey`.execute(db);
  await sql`ALTER TABLE task_instance DROP CONSTRAINT task_instance_pkey`.execute(db);
  await sql`ALTER TABLE task_instance ADD COLUMN map_index integer NOT NULL DEFAULT -1 CHECK (map_index >= -1),
    ADD COLUMN max_active_tis_per_dag integer CHECK (max_active_tis_per_dag >= 1)`.execute(db);
  await sql`ALTER TABLE task_instance ADD CONSTRAINT task_instance_pkey PRIMARY KEY (dag_id, run_id, task_id, map_index)`.execute(db);
  await sql`ALTER TABLE xcom ADD COLUMN map_index integer NOT NULL DEFAULT -1`.execute(db);
  await sql`ALTER TABLE xcom ADD CONSTRAINT xcom_pkey PRIMARY KEY (dag_id, run_id, task_id, map_index, key)`.execute(db);
  await sql`ALTER TABLE xcom ADD CONSTRAINT xcom_task_instance_fkey FOREIGN KEY (dag_id, run_id, task_id, map_index)
    REFERENCES task_instance (dag_id, run_id, task_id, map_index) ON DELETE CASCADE ON UPDATE CASCADE`.execute(db);
  // The per-task limit counts a task's active task instances in the enqueue's critical section.
  await sql`CREATE INDEX ti_task_active_idx ON task_instance (dag_id, task_id) WHERE state IN ('queued', 'running')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX ti_task_active_idx`.execute(db);
  await sql`DELETE FROM task_instance WHERE map_index >= 0`.execute(db);
  await sql`ALTER TABLE xcom DROP CONSTRAINT xcom_task_instance_fkey`.execute(db);
  await sql`ALTER TABLE xcom DROP CONSTRAINT xcom_pkey`.execute(db);
  await sql`ALTER TABLE xcom DROP COLUMN map_index`.execute(db);
  await sql`ALTER TABLE xcom ADD CONSTRAINT xcom_pkey PRIMARY KEY (dag_id, run_id, task_id, key)`.execute(db);
  await sql`ALTER TABLE task_instance DROP CONSTRAINT task_instance_pkey`.execute(db);
  await sql`ALTER TABLE task_instance DROP COLUMN max_active_tis_per_dag, DROP COLUMN map_index`.execute(db);
  await sql`ALTER TABLE task_instance ADD CONSTRAINT task_instance_pkey PRIMARY KEY (dag_id, run_id, task_id)`.execute(db);
  await sql`ALTER TABLE xcom ADD CONSTRAINT xcom_task_instance_fkey FOREIGN KEY (dag_id, run_id, task_id)
    REFERENCES task_instance (dag_id, run_id, task_id) ON DELETE CASCADE`.execute(db);
}
