import { sql, type Kysely } from 'kysely';

/*
 * The Waits page (issue 14): every pending wait, paged by keyset over 100,000 of them, and the fire
 * lateness of recent time triggers.
 *
 * Paging indexes. Each holds the deferred task instances only, keyed on a sort order and the trigger
 * id (the stable tiebreak). Their predicate names `next_method IS NOT NULL` (every deferral sets it),
 * which the waits queries repeat and no other query on deferred rows states: the planner cannot prove
 * it from `state = 'deferred' AND trigger_id = ANY(…)`, so, like 0004's timeout index, these cannot
 * stand in for `ti_trigger_idx` in an event write on a table not analysed yet.
 * - by timeout: `coalesce(trigger_timeout, 'infinity')` puts waits without a timeout last in one scan;
 * - by DAG: the DAG filter, in creation (trigger id) order; the other orders with a DAG filter read
 *   the DAG's waits through it and sort them, or walk the order's index, whichever the planner costs lower.
 * Creation order without a filter walks `ti_trigger_idx` (trigger ids grow with creation).
 *
 * Lateness: `trigger_fired_at` / `trigger_lateness_ms` record the last time-trigger event a task
 * instance resumed from — when the event was written (database clock) and how late the triggerer
 * saw it fire against its due moment — written by the event write itself. Nothing else kept it:
 * the event payload is replaced when the try ends, and the triggerer's summary metric has no
 * history. One row per task instance, overwritten by its next fire, so it needs no pruning.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE task_instance ADD COLUMN trigger_fired_at timestamptz, ADD COLUMN trigger_lateness_ms double precision`.execute(db);
  await sql`CREATE INDEX ti_trigger_fired_idx ON task_instance (trigger_fired_at) WHERE trigger_fired_at IS NOT NULL`.execute(db);
  await sql`
    CREATE INDEX ti_waits_timeout_idx ON task_instance ((coalesce(trigger_timeout, 'infinity'::timestamptz)), trigger_id)
    WHERE state = 'deferred' AND next_method IS NOT NULL`.execute(db);
  await sql`CREATE INDEX ti_waits_dag_idx ON task_instance (dag_id, trigger_id) WHERE state = 'deferred' AND next_method IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX ti_waits_dag_idx`.execute(db);
  await sql`DROP INDEX ti_waits_timeout_idx`.execute(db);
  await sql`DROP INDEX ti_trigger_fired_idx`.execute(db);
  await sql`ALTER TABLE task_instance DROP COLUMN trigger_lateness_ms, DROP COLUMN trigger_fired_at`.execute(db);
}
