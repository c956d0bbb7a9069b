import { sql, type Kysely } from 'kysely';

/*
 * External events (issue 17): an application sends `tsflow_send_event(key, payload)` inside its own
 * transaction, so the event exists if and only if that transaction commits; the NOTIFY it queues is
 * delivered at commit, never on rollback. The notification carries only the event id (a payload may be
 * far larger than NOTIFY's 8000 bytes): listeners read the row.
 *
 * `created_at` is `clock_timestamp()`, the moment of the insert, not the transaction's start: a wait's
 * `since` window and the wake latency are measured from it.
 *
 * `event_consumer`: which task instances resumed from which event, written by the triggerer after the
 * fenced event write landed; deleted with the event by the retention sweep (ON DELETE CASCADE).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE event (
      id bigserial PRIMARY KEY,
      key text NOT NULL CHECK (key <> '' AND length(key) <= 250),
      payload jsonb NOT NULL DEFAULT 'null',
      sender text,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )`.execute(db);
  await sql`CREATE INDEX event_key_time_idx ON event (key, created_at)`.execute(db);
  await sql`CREATE INDEX event_time_idx ON event (created_at)`.execute(db);
  await sql`
    CREATE TABLE event_consumer (
      event_id bigint NOT NULL REFERENCES event (id) ON DELETE CASCADE,
      dag_id text NOT NULL,
      run_id text NOT NULL,
      task_id text NOT NULL,
      map_index integer NOT NULL DEFAULT -1,
      consumed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (event_id, dag_id, run_id, task_id, map_index)
    )`.execute(db);
  await sql`
    CREATE FUNCTION tsflow_send_event(key text, payload jsonb, sender text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql VOLATILE AS $fn$
    DECLARE
      new_id bigint;
    BEGIN
      IF key IS NULL OR key = '' OR length(key) > 250 THEN
        RAISE EXCEPTION 'tsflow_send_event: the key must be 1 to 250 characters, got %', coalesce(quote_literal(left(key, 40)), 'NULL')
          USING ERRCODE = '22023';
      END IF;
      INSERT INTO event (key, payload, sender)
      VALUES (key, coalesce(payload, 'null'::jsonb), coalesce(sender, session_user::text))
      RETURNING id INTO new_id;
      PERFORM pg_notify('tsflow_event', new_id::text);
      RETURN new_id;
    END
    $fn$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION tsflow_send_event(text, jsonb, text)`.execute(db);
  await sql`DROP TABLE event_consumer`.execute(db);
  await sql`DROP TABLE event`.execute(db);
}
