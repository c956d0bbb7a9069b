import { sql } from 'kysely';
import { summarise } from './stats.ts';
import type { Database } from '../../src/db/database.ts';

/**
 * Stamps, per task instance, the moments it is queued (with the enqueue's transaction id, whose
 * commit time pg_xact_commit_timestamp gives) and its graphile-worker job is locked by a worker's
 * getJob: database triggers, clock_timestamp() of each row's statement. (A tsflow worker claims the
 * try in the task process's `running` write: that moment is start_date.) Bench databases only.
 */
export async function installPickupAudit(database: Database): Promise<void> {
  const d = database.db;
  await sql`CREATE TABLE IF NOT EXISTS pickup_audit (event text NOT NULL, run_id text, task_id text, job_key text,
    at timestamptz NOT NULL DEFAULT clock_timestamp(), xid xid8 NOT NULL DEFAULT pg_current_xact_id())`.execute(d);
  await sql`CREATE OR REPLACE FUNCTION pickup_audit_ti() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO pickup_audit (event, run_id, task_id) VALUES (TG_ARGV[0], NEW.run_id, NEW.task_id); RETURN NULL; END $$`.execute(d);
  await sql`CREATE OR REPLACE FUNCTION pickup_audit_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO pickup_audit (event, job_key) VALUES ('locked', NEW.key); RETURN NULL; END $$`.execute(d);
  await sql`CREATE OR REPLACE TRIGGER pickup_queued AFTER UPDATE ON task_instance FOR EACH ROW
    WHEN (NEW.state = 'queued' AND OLD.state IS DISTINCT FROM 'queued') EXECUTE FUNCTION pickup_audit_ti('queued')`.execute(d);
  await sql`CREATE OR REPLACE TRIGGER pickup_locked AFTER UPDATE ON graphile_worker._private_jobs FOR EACH ROW
    WHEN (OLD.locked_at IS NULL AND NEW.locked_at IS NOT NULL) EXECUTE FUNCTION pickup_audit_job()`.execute(d);
}

/** One task instance's pick-up, epoch ms (null: that stage did not happen, or is not measurable here). */
export interface PickupTimes {
  runId: string;
  state: string;
  queued: number;
  /** Its start_date (the running write of a fresh try; a resume keeps the first one). */
  started: number | null;
  /** The enqueue's commit (needs track_commit_timestamp). */
  committed: number | null;
  locked: number | null;
}

/**
 * The pick-up stages of one task of each run of `dagId` whose run id starts with `runPrefix`, for
 * the job of try `tryNumber`. Each is the latest queueing and the first lock after it.
 */
export async function readPickups(database: Database, dagId: string, runPrefix: string, commitTimestamps: boolean, tryNumber = 1): Promise<PickupTimes[]> {
  const committed = commitTimestamps
    ? sql`(SELECT (extract(epoch FROM pg_xact_commit_timestamp(a.xid::text::xid)) * 1000)::float8 FROM pickup_audit a
           WHERE a.event = 'queued' AND a.run_id = ti.run_id AND a.task_id = ti.task_id ORDER BY a.at DESC LIMIT 1)`
    : sql`NULL::float8`;
  const { rows } = await sql<PickupTimes>`
    SELECT ti.run_id AS "runId", ti.state,
      (extract(epoch FROM ti.queued_at) * 1000)::float8 AS queued,
      (extract(epoch FROM ti.start_date) * 1000)::float8 AS started,
      ${committed} AS committed,
      (SELECT (extract(epoch FROM a.at) * 1000)::float8 FROM pickup_audit a
       WHERE a.event = 'locked' AND a.job_key = ti.dag_id || '/' || ti.run_id || '/' || ti.task_id || '#' || ${tryNumber}::int AND a.at >= ti.queued_at
       ORDER BY a.at LIMIT 1) AS locked
    FROM task_instance ti WHERE ti.dag_id = ${dagId} AND starts_with(ti.run_id, ${runPrefix})`.execute(database.db);
  return rows;
}

/** b − a, or null when either is missing. */
export function span(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : b - a;
}

/**
 * Adds `<name>P50Ms` and `<name>P99Ms` (and `<name>MaxMs`) of a stage to `figures` — unless some
 * sample lacks it (a stage this executor or server does not have).
 */
export function addStage(figures: Record<string, number>, name: string, values: readonly (number | null)[], withMax = false): void {
  const present = values.filter((v): v is number => v !== null);
  if (present.length === 0 || present.length < values.length) return;
  const s = summarise(present);
  figures[`${name}P50Ms`] = s.p50;
  figures[`${name}P99Ms`] = s.p99;
  if (withMax) figures[`${name}MaxMs`] = s.max;
}

/**
 * Where the slowest `share` of the samples (by `total`) spent their time: each stage's mean among
 * them, as one line for the log.
 */
export function slowestLine(samples: readonly Record<string, number | null>[], total: string, share = 0.05): string {
  const sorted = [...samples].sort((a, b) => (b[total] ?? 0) - (a[total] ?? 0));
  const slow = sorted.slice(0, Math.max(1, Math.round(sorted.length * share)));
  const names = Object.keys(slow[0] ?? {});
  const parts = names.map((n) => {
    const values = slow.map((s) => s[n]).filter((v): v is number => v !== null && v !== undefined);
    return values.length === 0 ? undefined : `${n} ${(values.reduce((a, b) => a + b, 0) / values.length).toFixed(1)}`;
  });
  return `slowest ${slow.length} of ${samples.length} (mean ms): ${parts.filter(Boolean).join(', ')}`;
}
