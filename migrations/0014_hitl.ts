import { sql, type Kysely } from 'kysely';

/*
 * Human in the loop (issue 17, Airflow 3.1's `hitl_detail`): one request per task instance (map
 * index included), written by the HITL operator when its try starts (a new try replaces it), answered
 * once. The response columns stay null until a person answers — or the wait times out and the
 * request's defaults are stored with `timed_out`. Deleted with its task instance.
 *
 * `id` names the request in the wake-up event's key when the task instance key is too long for one.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE hitl_detail (
      id bigserial NOT NULL UNIQUE,
      dag_id text NOT NULL,
      run_id text NOT NULL,
      task_id text NOT NULL,
      map_index integer NOT NULL DEFAULT -1,
      try_number integer NOT NULL,
      subject text NOT NULL,
      body text,
      options jsonb NOT NULL,
      params jsonb NOT NULL DEFAULT '{}',
      assignees jsonb NOT NULL DEFAULT '[]',
      defaults jsonb,
      multiple boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      chosen_options jsonb,
      params_input jsonb,
      responded_by text,
      responded_at timestamptz,
      timed_out boolean NOT NULL DEFAULT false,
      PRIMARY KEY (dag_id, run_id, task_id, map_index),
      FOREIGN KEY (dag_id, run_id, task_id, map_index)
        REFERENCES task_instance (dag_id, run_id, task_id, map_index) ON DELETE CASCADE ON UPDATE CASCADE
    )`.execute(db);
  // The Required actions page and `tsflow hitl list --pending`: the unanswered requests, oldest first.
  await sql`CREATE INDEX hitl_detail_pending_idx ON hitl_detail (created_at) WHERE responded_at IS NULL`.execute(db);
  await sql`CREATE INDEX hitl_detail_created_idx ON hitl_detail (created_at)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE hitl_detail`.execute(db);
}
