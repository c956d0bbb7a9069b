import { sql } from 'kysely';
import type { Database } from '../../src/db/database.ts';

/**
 * Records every deferred → scheduled transition in a `resume_log` table, via a database trigger: the
 * ground truth for "resumed exactly once", whoever wrote the event.
 */
export async function installResumeAudit(db: Database): Promise<() => Promise<Map<string, number>>> {
  await sql`CREATE TABLE IF NOT EXISTS resume_log (task_id text, run_id text, at timestamptz DEFAULT clock_timestamp())`.execute(db.db);
  await sql`
    CREATE OR REPLACE FUNCTION log_resume() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO resume_log (task_id, run_id) VALUES (NEW.task_id, NEW.run_id); RETURN NEW; END $$`.execute(db.db);
  await sql`DROP TRIGGER IF EXISTS audit_resume ON task_instance`.execute(db.db);
  await sql`
    CREATE TRIGGER audit_resume AFTER UPDATE OF state ON task_instance FOR EACH ROW
    WHEN (OLD.state = 'deferred' AND NEW.state = 'scheduled') EXECUTE FUNCTION log_resume()`.execute(db.db);
  return async () => {
    const { rows } = await sql<{ key: string; n: number }>`SELECT run_id || '/' || task_id AS key, count(*)::int AS n FROM resume_log GROUP BY 1`.execute(db.db);
    return new Map(rows.map((r) => [r.key, r.n]));
  };
}
