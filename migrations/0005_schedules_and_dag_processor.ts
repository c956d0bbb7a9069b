import { sql, type Kysely } from 'kysely';

/*
 * Schedules and the DAG processor (issue 12).
 * - `dag` gains what the scheduler needs without reading the DAG file: whether the DAG still exists
 *   (`is_active`), its run limits, and the next run to create (Airflow's `next_dagrun*` columns),
 *   kept by whoever creates runs. `next_dagrun_create_after` NULL means nothing is due.
 * - `serialized_dag`: the DAG as the DAG processor parsed it (JSON), with a hash so an unchanged DAG
 *   is not rewritten; schedulers read it instead of importing user code.
 * - `import_error`: one row per DAG file that failed to parse, cleared when the file parses again.
 * - `dag_run` gains its data interval; a scheduled or backfill run is unique per logical date, so two
 *   schedulers can never create the same one. Manual runs are not bound by it (as Airflow 3 lets a
 *   manual run share a logical date with a scheduled one).
 * - `job` may be a dag processor or a worker.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE dag
    ADD COLUMN is_active boolean NOT NULL DEFAULT true,
    ADD COLUMN timetable_summary text,
    ADD COLUMN max_active_runs integer NOT NULL DEFAULT 16,
    ADD COLUMN max_active_tasks integer NOT NULL DEFAULT 16,
    ADD COLUMN next_dagrun timestamptz,
    ADD COLUMN next_dagrun_data_interval_start timestamptz,
    ADD COLUMN next_dagrun_data_interval_end timestamptz,
    ADD COLUMN next_dagrun_create_after timestamptz`.execute(db);
  await sql`CREATE INDEX dag_next_dagrun_idx ON dag (next_dagrun_create_after)
    WHERE is_active AND NOT is_paused AND next_dagrun_create_after IS NOT NULL`.execute(db);

  await sql`CREATE TABLE serialized_dag (
    dag_id text PRIMARY KEY REFERENCES dag (dag_id) ON DELETE CASCADE,
    fileloc text NOT NULL,
    dag_hash text NOT NULL,
    data jsonb NOT NULL,
    last_updated timestamptz NOT NULL DEFAULT now()
  )`.execute(db);

  await sql`CREATE TABLE import_error (
    filename text PRIMARY KEY,
    file_hash text,
    stacktrace text NOT NULL,
    timestamp timestamptz NOT NULL DEFAULT now()
  )`.execute(db);

  await sql`ALTER TABLE dag_run
    ADD COLUMN data_interval_start timestamptz,
    ADD COLUMN data_interval_end timestamptz,
    ADD CONSTRAINT dag_run_run_type_check CHECK (run_type IN ('manual', 'scheduled', 'backfill', 'asset_triggered'))`.execute(db);
  await sql`CREATE UNIQUE INDEX dag_run_logical_date_key ON dag_run (dag_id, logical_date) WHERE run_type <> 'manual'`.execute(db);

  await sql`ALTER TABLE job DROP CONSTRAINT job_job_type_check`.execute(db);
  await sql`ALTER TABLE job ADD CONSTRAINT job_job_type_check CHECK (job_type IN ('scheduler', 'triggerer', 'dag_processor', 'worker'))`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE job DROP CONSTRAINT job_job_type_check`.execute(db);
  await sql`ALTER TABLE job ADD CONSTRAINT job_job_type_check CHECK (job_type IN ('scheduler', 'triggerer'))`.execute(db);
  await sql`DROP INDEX dag_run_logical_date_key`.execute(db);
  await sql`ALTER TABLE dag_run DROP CONSTRAINT dag_run_run_type_check, DROP COLUMN data_interval_start, DROP COLUMN data_interval_end`.execute(db);
  await sql`DROP TABLE import_error`.execute(db);
  await sql`DROP TABLE serialized_dag`.execute(db);
  await sql`DROP INDEX dag_next_dagrun_idx`.execute(db);
  await sql`ALTER TABLE dag DROP COLUMN is_active, DROP COLUMN timetable_summary, DROP COLUMN max_active_runs,
    DROP COLUMN max_active_tasks, DROP COLUMN next_dagrun, DROP COLUMN next_dagrun_data_interval_start,
    DROP COLUMN next_dagrun_data_interval_end, DROP COLUMN next_dagrun_create_after`.execute(db);
}
