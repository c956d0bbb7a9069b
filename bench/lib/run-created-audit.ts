import { sql } from 'kysely';
import type { Database } from '../../src/db/database.ts';

/**
 * Records each inserted `dag_run` row in `run_created_log`, in the inserting transaction, through a
 * statement-level database trigger. A run's own row is updated moments later (started, finished),
 * which gives it a new `xmin`; the log row never changes, so `pg_xact_commit_timestamp(xmin)` of the
 * log row is the commit of the run's creation.
 */
export async function installRunCreatedAudit(db: Database): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS run_created_log (dag_id text NOT NULL, run_id text NOT NULL)`.execute(db.db);
  await sql`
    CREATE OR REPLACE FUNCTION log_run_created() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO run_created_log (dag_id, run_id) SELECT dag_id, run_id FROM created_runs; RETURN NULL; END $$`.execute(db.db);
  await sql`DROP TRIGGER IF EXISTS audit_run_created ON dag_run`.execute(db.db);
  await sql`
    CREATE TRIGGER audit_run_created AFTER INSERT ON dag_run REFERENCING NEW TABLE AS created_runs
    FOR EACH STATEMENT EXECUTE FUNCTION log_run_created()`.execute(db.db);
}
