import { sql } from 'kysely';
import type { Db } from './database.ts';
import { Channels, notify } from './protocol.ts';
import { mapIndexOf, rowKey, type TaskInstanceKey, type TaskInstanceState } from './schema.ts';

/*
 * Tries that ended outside the task, so the task itself never recorded how: the executor reports its
 * worker died or could not start it, the try's heartbeat stopped (a zombie), or it never left
 * `queued`. Airflow fails them through `handle_failure`: retried while tries remain, else failed,
 * with the reason recorded.
 */

export interface LostTry {
  key: TaskInstanceKey;
  /** The try that was lost (counted even if it never got to start). */
  tryNumber: number;
  state: Extract<TaskInstanceState, 'up_for_retry' | 'failed'>;
  reason: string;
}

/** When a lost try of this task may run again (the task's retryDelay for that try). */
export type RetryAt = (key: TaskInstanceKey, tryNumber: number) => Date;

export interface LockedRow {
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: number;
  state: TaskInstanceState;
  try_number: number;
  max_tries: number;
  next_method: string | null;
  last_heartbeat_at: Date | null;
}

/**
 * The executor says a workload failed outside the task. Fenced: with `tryNumber` (the workload reported
 * that try running) only that try, still `running`, is failed; without it (the workload never got to
 * start) only a task instance still `queued` is. Anything else moved on and is left alone.
 */
export async function failFromExecutor(
  db: Db,
  key: TaskInstanceKey,
  fence: { tryNumber?: number | undefined },
  reason: string,
  retryAt: RetryAt,
): Promise<LostTry | undefined> {
  return db.transaction().execute(async (trx) => {
    const tryNumber = fence.tryNumber ?? null;
    const { rows } = await sql<LockedRow>`
      SELECT dag_id, run_id, task_id, map_index, state, try_number, max_tries, next_method, last_heartbeat_at FROM task_instance
      WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND task_id = ${key.taskId} AND map_index = ${mapIndexOf(key)}
        AND ((${tryNumber}::int IS NULL AND state = 'queued') OR (state = 'running' AND try_number = ${tryNumber}::int))
      FOR UPDATE`.execute(trx);
    const [lost] = await failLocked(trx, rows, () => reason, retryAt);
    return lost;
  });
}

/**
 * Zombies: `running` task instances whose heartbeat is older than `thresholdMs` (by the database
 * clock), failed or sent to retry. SKIP LOCKED, so two schedulers never block on — or both fail —
 * the same row, and a try finishing right now (its row locked by finishTry) is not touched.
 */
export async function failZombies(db: Db, thresholdMs: number, retryAt: RetryAt, limit = 1000): Promise<LostTry[]> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<LockedRow>`
      SELECT dag_id, run_id, task_id, map_index, state, try_number, max_tries, next_method, last_heartbeat_at FROM task_instance
      WHERE state = 'running'
        AND coalesce(last_heartbeat_at, updated_at) < clock_timestamp() - make_interval(secs => ${thresholdMs / 1000})
      ORDER BY last_heartbeat_at NULLS FIRST
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED`.execute(trx);
    return failLocked(
      trx,
      rows,
      (row) =>
        `zombie: the worker running try ${row.try_number} stopped heartbeating` +
        `${row.last_heartbeat_at ? ` (last heartbeat ${row.last_heartbeat_at.toISOString()})` : ''}; ` +
        `no heartbeat for more than ${Math.round(thresholdMs / 1000)} s`,
      retryAt,
    );
  });
}

/**
 * Task instances `queued` for longer than `timeoutMs` (Airflow's `task_queued_timeout`): the scheduler
 * that queued them died before its executor started them, or they were withdrawn from a broker no
 * worker took them from. Their lost try is retried or failed. `exclude` are those this scheduler's
 * executor still holds; `reasonOf` may name a better reason for a row than a dead scheduler.
 * SKIP LOCKED.
 */
export async function failStuckQueued(
  db: Db,
  timeoutMs: number,
  exclude: readonly TaskInstanceKey[],
  retryAt: RetryAt,
  reasonOf: (key: TaskInstanceKey) => string | undefined = () => undefined,
  limit = 1000,
): Promise<LostTry[]> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<LockedRow>`
      SELECT dag_id, run_id, task_id, map_index, state, try_number, max_tries, next_method, last_heartbeat_at FROM task_instance
      WHERE state = 'queued'
        AND coalesce(queued_at, updated_at) < clock_timestamp() - make_interval(secs => ${timeoutMs / 1000})
        AND (dag_id, run_id, task_id, map_index) NOT IN (
          SELECT * FROM unnest(${exclude.map((k) => k.dagId)}::text[], ${exclude.map((k) => k.runId)}::text[], ${exclude.map((k) => k.taskId)}::text[],
            ${exclude.map(mapIndexOf)}::int[]))
      ORDER BY queued_at NULLS FIRST
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED`.execute(trx);
    const fallback = `stuck in queued for more than ${Math.round(timeoutMs / 1000)} s: no executor started it (was its scheduler stopped?)`;
    return failLocked(trx, rows, (row) => reasonOf(rowKey(row)) ?? fallback, retryAt);
  });
}

/**
 * Ends the locked rows' tries in one statement. A row still `queued` never started its try, which
 * is counted now (try_number + 1) unless it is a resume (same try). A retry starts afresh at
 * `execute`, so the deferral columns are cleared.
 */
export async function failLocked(trx: Db, rows: readonly LockedRow[], reasonFor: (row: LockedRow) => string, retryAt: RetryAt): Promise<LostTry[]> {
  if (rows.length === 0) return [];
  const lost = rows.map((row) => {
    const key = rowKey(row);
    const tryNumber = row.state === 'queued' && row.next_method === null ? row.try_number + 1 : row.try_number;
    const state = tryNumber <= row.max_tries ? ('up_for_retry' as const) : ('failed' as const);
    return { key, tryNumber, state, reason: reasonFor(row), readyAt: state === 'up_for_retry' ? retryAt(key, tryNumber) : null };
  });
  await sql`
    UPDATE task_instance ti SET
      state = l.state, try_number = l.try_number, ready_at = l.ready_at, error = l.reason,
      end_date = clock_timestamp(), hostname = NULL, pid = NULL,
      next_method = NULL, next_kwargs = NULL, trigger_timeout = NULL, updated_at = now()
    FROM unnest(${lost.map((l) => l.key.dagId)}::text[], ${lost.map((l) => l.key.runId)}::text[], ${lost.map((l) => l.key.taskId)}::text[], ${lost.map((l) => mapIndexOf(l.key))}::int[],
                ${lost.map((l) => l.state)}::text[], ${lost.map((l) => l.tryNumber)}::int[],
                ${lost.map((l) => l.readyAt)}::timestamptz[], ${lost.map((l) => l.reason)}::text[])
      AS l(dag_id, run_id, task_id, map_index, state, try_number, ready_at, reason)
    WHERE ti.dag_id = l.dag_id AND ti.run_id = l.run_id AND ti.task_id = l.task_id AND ti.map_index = l.map_index`.execute(trx);
  await notify(trx, Channels.ti, 'lost');
  return lost.map(({ readyAt: _readyAt, ...rest }) => rest);
}
