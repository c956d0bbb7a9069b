import { sql } from 'kysely';
import type { Database } from '../../src/db/database.ts';
import type { JsonObject } from '../../src/sdk/json.ts';

export interface SeedOptions {
  dagId: string;
  /** `one-run`: one run, task ids t0…tN; `run-per-task`: N runs of the task `taskId`. */
  layout: { kind: 'one-run'; runId: string } | { kind: 'run-per-task'; runPrefix: string; taskId: string };
  classpath: string;
  kwargs: readonly JsonObject[];
  notify?: boolean;
  /**
   * VACUUM ANALYZE the seeded tables before announcing them (default true): N tasks deferred one by
   * one would long since have been vacuumed and analysed; a bulk insert instead wakes autovacuum
   * some seconds later — in the middle of whatever is being measured.
   */
  vacuum?: boolean;
}

/**
 * Inserts N task instances already deferred on their own trigger rows, set-based (a few statements
 * for 100,000 rows): the state N defer transactions would leave, without paying for N defers.
 */
export async function seedDeferred(db: Database, options: SeedOptions): Promise<void> {
  const n = options.kwargs.length;
  const kwargs = options.kwargs.map((k) => JSON.stringify(k));
  await db.db.transaction().execute(async (trx) => {
    await sql`INSERT INTO dag (dag_id, fileloc) VALUES (${options.dagId}, '') ON CONFLICT DO NOTHING`.execute(trx);
    const layout = options.layout;
    if (layout.kind === 'one-run') {
      await sql`INSERT INTO dag_run (dag_id, run_id, state) VALUES (${options.dagId}, ${layout.runId}, 'running')`.execute(trx);
    } else {
      await sql`INSERT INTO dag_run (dag_id, run_id, state)
        SELECT ${options.dagId}, ${layout.runPrefix} || i, 'running' FROM generate_series(0, ${n - 1}::int) AS i`.execute(trx);
    }
    const runId = layout.kind === 'one-run' ? layout.runId : null;
    const runPrefix = layout.kind === 'run-per-task' ? layout.runPrefix : null;
    const taskId = layout.kind === 'run-per-task' ? layout.taskId : null;
    await sql`
      WITH input AS (
        SELECT k.kwargs, k.i - 1 AS i FROM unnest(${kwargs}::jsonb[]) WITH ORDINALITY AS k(kwargs, i)
      ),
      triggers AS (
        INSERT INTO trigger (classpath, kwargs, created_at)
        SELECT ${options.classpath}, kwargs, now() FROM input ORDER BY i
        RETURNING id
      ),
      numbered AS (
        SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM triggers
      )
      INSERT INTO task_instance (dag_id, run_id, task_id, state, try_number, trigger_id, next_method, next_kwargs, start_date)
      SELECT ${options.dagId},
             coalesce(${runId}::text, ${runPrefix}::text || i),
             coalesce(${taskId}::text, 't' || i),
             'deferred', 1, id, 'executeComplete', '{}'::jsonb, now()
      FROM numbered`.execute(trx);
  });
  if (options.vacuum !== false) await sql`VACUUM ANALYZE dag_run, task_instance, trigger`.execute(db.db);
  if (options.notify !== false) await sql`SELECT pg_notify('tsflow_trigger', 'new')`.execute(db.db);
}

/** Triggers still owned by anyone, or unowned. */
export async function countTriggers(db: Database, triggererId?: number | null): Promise<number> {
  const query =
    triggererId === undefined
      ? sql<{ n: number }>`SELECT count(*)::int AS n FROM trigger`
      : triggererId === null
        ? sql<{ n: number }>`SELECT count(*)::int AS n FROM trigger WHERE triggerer_id IS NULL`
        : sql<{ n: number }>`SELECT count(*)::int AS n FROM trigger WHERE triggerer_id = ${triggererId}`;
  return (await query.execute(db.db)).rows[0]?.n ?? 0;
}

export async function countStates(db: Database, state: string): Promise<number> {
  return (await sql<{ n: number }>`SELECT count(*)::int AS n FROM task_instance WHERE state = ${state}`.execute(db.db)).rows[0]?.n ?? 0;
}

/**
 * Waits until no task instance is deferred any more, then checks that all `size` were scheduled.
 * The poll looks for any deferred row through its partial index (well under a millisecond), not a
 * count of the scheduled ones (14 ms at 100,000 rows, ten times a second, on the cores the measured
 * system is using).
 */
export async function untilAllResumed(db: Database, size: number, timeoutMs: number, everyMs: number): Promise<void> {
  await until(
    async () => (await sql<{ waiting: boolean }>`SELECT EXISTS (SELECT 1 FROM task_instance WHERE state = 'deferred') AS waiting`.execute(db.db)).rows[0]?.waiting === false,
    'every deferred task to resume',
    timeoutMs,
    everyMs,
  );
  const scheduled = await countStates(db, 'scheduled');
  if (scheduled !== size) throw new Error(`expected ${size} task instances resumed (scheduled), found ${scheduled}`);
}

/** Polls `check` every `everyMs` until true; throws after `timeoutMs`. Returns the elapsed ms. */
export async function until(check: () => Promise<boolean>, what: string, timeoutMs: number, everyMs = 20): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Lateness of each resumed task instance, in ms: the commit time of its `scheduled` state (or, on a
 * server without track_commit_timestamp, the scheduled_at the write recorded) minus its trigger's due moment.
 */
export async function latenessMs(db: Database, commitTimestamps: boolean): Promise<number[]> {
  const written = commitTimestamps ? sql`pg_xact_commit_timestamp(xmin)` : sql`scheduled_at`;
  const { rows } = await sql<{ late: number }>`
    SELECT (extract(epoch FROM (${written} - (next_kwargs -> 'event' ->> 'moment')::timestamptz)) * 1000)::float8 AS late
    FROM task_instance WHERE state = 'scheduled' AND next_kwargs ? 'event'`.execute(db.db);
  return rows.map((r) => r.late);
}

/** When the events were written: first and last commit (epoch ms). */
export async function writeSpan(db: Database, commitTimestamps: boolean): Promise<{ first: number; last: number }> {
  const written = commitTimestamps ? sql`pg_xact_commit_timestamp(xmin)` : sql`scheduled_at`;
  const { rows } = await sql<{ first: number; last: number }>`
    SELECT (extract(epoch FROM min(${written})) * 1000)::float8 AS first, (extract(epoch FROM max(${written})) * 1000)::float8 AS last
    FROM task_instance WHERE state = 'scheduled'`.execute(db.db);
  return { first: rows[0]?.first ?? Number.NaN, last: rows[0]?.last ?? Number.NaN };
}
