import { sql, type RawBuilder } from 'kysely';
import type { JsonObject } from '../sdk/json.ts';
import { describeWait, type WaitTarget } from '../triggerer/describe-wait.ts';
import type { Db } from './database.ts';
import { tryDecodeTriggerKwargs } from './trigger-kwargs.ts';

/*
 * The Waits page's reads (issue 14): every pending wait — a deferred task instance and the trigger
 * row it waits on — filtered, ordered and paged by keyset over indexes that hold only deferred rows
 * (migration 0010), so a page costs what a page holds, whether 1,000 or 100,000 wait; and the fire
 * lateness of recent time triggers. Nothing here reads kwargs in SQL: they may be encrypted at rest,
 * so "what it waits for" is `describeWait` on the decoded kwargs of the rows of one page.
 */

/** `timeout`: soonest timeout first, waits without one last. `created`: oldest first (trigger ids grow with creation). */
export type WaitOrder = 'timeout' | 'created';
export const WAIT_ORDERS: readonly WaitOrder[] = ['timeout', 'created'];

export const MAX_WAITS_LIMIT = 500;
export const DEFAULT_WAITS_LIMIT = 100;
/**
 * Totals are counted exactly up to this many waits (a bounded index scan, a few ms); a larger one is
 * the planner's estimate, since counting 100,000 rows exactly took 50-150 ms on the shared bench
 * machine, more than the page itself.
 */
export const EXACT_TOTAL_UP_TO = 10_000;

export interface WaitQuery {
  dagId?: string | undefined;
  runId?: string | undefined;
  taskId?: string | undefined;
  /** The trigger's classpath, exactly (`tsflow.triggers.DateTimeTrigger`). */
  classpath?: string | undefined;
  /** The owning triggerer's job id, or `unassigned` for the waits no triggerer runs yet. */
  triggererId?: number | 'unassigned' | undefined;
  /** Case-insensitive substring of the DAG id, run id or task id (not indexed: it filters the rows the order walks). */
  search?: string | undefined;
  /** @default 'timeout' */
  order?: WaitOrder | undefined;
  /** @default 'asc' */
  direction?: 'asc' | 'desc' | undefined;
  /** Waits per page, 1 to `MAX_WAITS_LIMIT`. @default 100 */
  limit?: number | undefined;
  /** The previous page's `nextCursor`: the page after it, in the same order and direction. */
  cursor?: string | undefined;
  /** Count the waits the filters match: exactly up to `EXACT_TOTAL_UP_TO`, estimated beyond; never with `search`. @default true */
  withTotal?: boolean | undefined;
}

export interface Wait {
  triggerId: number;
  classpath: string;
  /** What it waits for, from `describeWait` (its `kind` says which sort of trigger it is). */
  waitsFor: WaitTarget;
  dagId: string;
  runId: string;
  taskId: string;
  /** -1: unmapped. */
  mapIndex: number;
  tryNumber: number;
  maxTries: number;
  /** The triggerer job running it, or null while no triggerer has claimed it. */
  triggererId: number | null;
  triggererHostname: string | null;
  createdAt: Date;
  ageSeconds: number;
  /** When the wait gives up (the task's try then fails with a trigger timeout), or null for never. */
  triggerTimeout: Date | null;
  /** Seconds until `triggerTimeout` (negative: past, the sweep is about to fail it); null for never. */
  timeLeftSeconds: number | null;
}

export interface WaitPage {
  waits: Wait[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
  /**
   * How many waits the filters match, or null when not asked for (`withTotal: false`, or a `search`,
   * which no index serves, so counting it would read every wait): exact up to
   * `EXACT_TOTAL_UP_TO`; beyond, the planner's estimate (`totalExact` false).
   */
  total: number | null;
  totalExact: boolean;
  /** The database's clock when the page was read (what ages and time left are measured against). */
  now: Date;
}

/** A query the waits listing cannot run: a bad limit, order or cursor. The message says which value. */
export class InvalidWaitQueryError extends Error {
  override name = 'InvalidWaitQueryError';
}

interface Cursor {
  /** Order and direction the cursor was made for: a cursor is only valid for the same. */
  o: WaitOrder;
  d: 'asc' | 'desc';
  /** The sort key of the last row (timeout order: its timeout to the microsecond, null for none). */
  k: string | null;
  /** The last row's trigger id. */
  i: number;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(text: string, order: WaitOrder, direction: 'asc' | 'desc'): Cursor {
  let cursor: Partial<Cursor>;
  try {
    cursor = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Partial<Cursor>;
  } catch {
    throw new InvalidWaitQueryError(`cursor '${text.slice(0, 40)}' is not one this listing made: pass a nextCursor unchanged, or none for the first page`);
  }
  const valid =
    typeof cursor === 'object' &&
    cursor !== null &&
    Number.isSafeInteger(cursor.i) &&
    (cursor.k === null || (typeof cursor.k === 'string' && Number.isFinite(Date.parse(cursor.k))));
  if (!valid) {
    throw new InvalidWaitQueryError(`cursor '${text.slice(0, 40)}' is not one this listing made: pass a nextCursor unchanged, or none for the first page`);
  }
  if (cursor.o !== order || cursor.d !== direction) {
    throw new InvalidWaitQueryError(
      `the cursor was made for order ${String(cursor.o)} ${String(cursor.d)}, not ${order} ${direction}: keep the order of the first page, or start again without a cursor`,
    );
  }
  return cursor as Cursor;
}

/** The sort expression of each order: each matches an index of migration 0010 (or ti_trigger_idx) exactly. */
const TIMEOUT_KEY = sql`coalesce(ti.trigger_timeout, 'infinity'::timestamptz)`;

function checkedLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_WAITS_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_WAITS_LIMIT) {
    throw new InvalidWaitQueryError(`limit must be a whole number from 1 to ${MAX_WAITS_LIMIT}, got ${limit}`);
  }
  return limit;
}

/** `%text%` for ILIKE, with the pattern characters of `text` escaped. */
function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The filters, as conditions on `ti` (task_instance) and `t` (trigger); the first two pick the waits indexes. */
function filterConditions(query: WaitQuery): { conditions: RawBuilder<unknown>[]; needsTrigger: boolean } {
  const conditions: RawBuilder<unknown>[] = [sql`ti.state = 'deferred'`, sql`ti.next_method IS NOT NULL`];
  let needsTrigger = false;
  if (query.dagId !== undefined) conditions.push(sql`ti.dag_id = ${query.dagId}`);
  if (query.runId !== undefined) conditions.push(sql`ti.run_id = ${query.runId}`);
  if (query.taskId !== undefined) conditions.push(sql`ti.task_id = ${query.taskId}`);
  if (query.search !== undefined && query.search !== '') {
    const pattern = containsPattern(query.search);
    conditions.push(sql`(ti.dag_id ILIKE ${pattern} OR ti.run_id ILIKE ${pattern} OR ti.task_id ILIKE ${pattern})`);
  }
  if (query.classpath !== undefined) {
    conditions.push(sql`t.classpath = ${query.classpath}`);
    needsTrigger = true;
  }
  if (query.triggererId !== undefined) {
    if (query.triggererId === 'unassigned') conditions.push(sql`t.triggerer_id IS NULL`);
    else if (Number.isSafeInteger(query.triggererId)) conditions.push(sql`t.triggerer_id = ${query.triggererId}`);
    else throw new InvalidWaitQueryError(`triggererId must be a job id or 'unassigned', got ${String(query.triggererId)}`);
    needsTrigger = true;
  }
  return { conditions, needsTrigger };
}

interface WaitRow {
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: number;
  try_number: number;
  max_tries: number;
  trigger_id: number;
  trigger_timeout: Date | null;
  timeout_key: string | null;
  classpath: string;
  kwargs: string | JsonObject;
  created_at: Date;
  triggerer_id: number | null;
  hostname: string | null;
  now: Date;
}

/**
 * One page of pending waits. Each page is one statement walking an index in the order asked (by
 * timeout: `ti_waits_timeout_idx`; by creation: `ti_trigger_idx`, or `ti_waits_dag_idx` with a DAG
 * filter) from the cursor on, joining each row's trigger by primary key and its triggerer's job by
 * primary key; `limit + 1` rows tell whether there is a next page. Filters on the trigger
 * (classpath, triggerer) and `search` are applied to the rows the walk meets, so a filter that
 * matches few waits reads further.
 */
export async function listWaits(db: Db, query: WaitQuery = {}): Promise<WaitPage> {
  const statements = waitsStatements(query);
  const [{ rows }, counted] = await Promise.all([statements.page.execute(db), statements.count ? countWaits(db, statements.count) : Promise.resolve(null)]);
  const { limit, order, direction } = statements;
  const more = rows.length > limit;
  const shown = more ? rows.slice(0, limit) : rows;
  const last = shown.at(-1);
  const now = shown[0]?.now ?? new Date();
  return {
    waits: shown.map((row) => toWait(row)),
    nextCursor: more && last ? encodeCursor({ o: order, d: direction, k: last.timeout_key, i: last.trigger_id }) : null,
    total: counted?.total ?? null,
    totalExact: counted?.exact ?? false,
    now,
  };
}

async function countWaits(db: Db, statements: { capped: RawBuilder<{ n: number }>; estimate: RawBuilder<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }> }) {
  const n = (await statements.capped.execute(db)).rows[0]?.n ?? 0;
  if (n <= EXACT_TOTAL_UP_TO) return { total: n, exact: true };
  const estimate = (await statements.estimate.execute(db)).rows[0]?.['QUERY PLAN'][0]?.Plan['Plan Rows'] ?? n;
  return { total: Math.max(n, Math.round(estimate)), exact: false };
}

/** The statements `listWaits` runs for `query` (the page, and the count unless `withTotal: false`): for EXPLAIN in the benchmark. */
export function waitsStatements(query: WaitQuery) {
  const order = query.order ?? 'timeout';
  if (!WAIT_ORDERS.includes(order)) throw new InvalidWaitQueryError(`order must be one of ${WAIT_ORDERS.join(', ')}, got '${String(order)}'`);
  const direction = query.direction ?? 'asc';
  if (direction !== 'asc' && direction !== 'desc') throw new InvalidWaitQueryError(`direction must be asc or desc, got '${String(direction)}'`);
  const limit = checkedLimit(query.limit);
  const cursor = query.cursor === undefined || query.cursor === '' ? undefined : decodeCursor(query.cursor, order, direction);
  const { conditions, needsTrigger } = filterConditions(query);
  const searching = query.search !== undefined && query.search !== '';

  const after = direction === 'asc' ? sql`>` : sql`<`;
  const dir = direction === 'asc' ? sql`ASC` : sql`DESC`;
  const keyset = [...conditions];
  if (cursor) {
    if (order === 'timeout') {
      keyset.push(sql`(${TIMEOUT_KEY}, ti.trigger_id) ${after} (coalesce(${cursor.k}::timestamptz, 'infinity'::timestamptz), ${cursor.i}::bigint)`);
    } else {
      keyset.push(sql`ti.trigger_id ${after} ${cursor.i}::bigint`);
      // Said of the trigger too, so that a merge join on the ids starts at the cursor on both sides.
      if (needsTrigger) keyset.push(sql`t.id ${after} ${cursor.i}::bigint`);
    }
  }
  const orderBy = order === 'timeout' ? sql`${TIMEOUT_KEY} ${dir}, ti.trigger_id ${dir}` : sql`ti.trigger_id ${dir}`;
  // The page's task instances are found first (joined to their triggers only when a filter is on
  // the trigger), then their triggers and triggerers are read by primary key: joined in one walk,
  // the planner may merge-join the creation order with the whole trigger table from its start.
  const page = sql<WaitRow>`
    SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, ti.max_tries, ti.trigger_id, ti.trigger_timeout,
      to_char(ti.trigger_timeout AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS timeout_key,
      t.classpath, t.kwargs, t.created_at, t.triggerer_id, j.hostname, statement_timestamp() AS now
    FROM (
      SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, ti.max_tries, ti.trigger_id, ti.trigger_timeout
      FROM task_instance ti ${needsTrigger ? sql`JOIN trigger t ON t.id = ti.trigger_id` : sql``}
      WHERE ${sql.join(keyset, sql` AND `)}
      ORDER BY ${orderBy}
      LIMIT ${limit + 1}
    ) ti
    JOIN trigger t ON t.id = ti.trigger_id
    LEFT JOIN job j ON j.id = t.triggerer_id
    ORDER BY ${orderBy}`;
  // The total joins the trigger table only when a filter is on it: counting deferred rows alone is
  // an index-only scan of a waits index.
  const matching = sql`
    SELECT 1 FROM task_instance ti ${needsTrigger ? sql`JOIN trigger t ON t.id = ti.trigger_id` : sql``}
    WHERE ${sql.join(conditions, sql` AND `)}`;
  // A substring search matches no index: counting its matches would read every wait.
  const count =
    query.withTotal === false || searching
      ? undefined
      : {
          capped: sql<{ n: number }>`SELECT count(*)::int AS n FROM (${matching} LIMIT ${EXACT_TOTAL_UP_TO + 1}) capped`,
          estimate: sql<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>`EXPLAIN (FORMAT JSON) ${matching}`,
        };
  return { page, count, limit, order, direction };
}

function toWait(row: WaitRow): Wait {
  const now = row.now.getTime();
  return {
    triggerId: row.trigger_id,
    classpath: row.classpath,
    waitsFor: describeWait(row.classpath, tryDecodeTriggerKwargs(row.kwargs, `trigger ${row.trigger_id}`).kwargs),
    dagId: row.dag_id,
    runId: row.run_id,
    taskId: row.task_id,
    mapIndex: row.map_index,
    tryNumber: row.try_number,
    maxTries: row.max_tries,
    triggererId: row.triggerer_id,
    triggererHostname: row.hostname,
    createdAt: row.created_at,
    ageSeconds: Math.max(0, (now - row.created_at.getTime()) / 1000),
    triggerTimeout: row.trigger_timeout,
    timeLeftSeconds: row.trigger_timeout === null ? null : (row.trigger_timeout.getTime() - now) / 1000,
  };
}

export interface LatenessQuery {
  /** Only fires written at or after this moment. @default one hour before now */
  since?: Date | undefined;
  /** At most this many, the most recent first (1 to 10,000). @default 1000 */
  limit?: number | undefined;
}

export interface LatenessPoint {
  dagId: string;
  runId: string;
  taskId: string;
  /** When the event was written (database clock). */
  firedAt: Date;
  /** How late the trigger fired against its due moment (ms), as its triggerer measured it. */
  latenessMs: number;
}

export interface LatenessReport {
  points: LatenessPoint[];
  /** Over `points`: the median, 99th percentile and largest lateness (ms); null when there are none. */
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

export const MAX_LATENESS_LIMIT = 10_000;

/**
 * The fire lateness of recent time triggers, most recent first: what the triggerer measured (fired
 * at minus due at) when the event was written (`trigger_fired_at`, `trigger_lateness_ms`, migration
 * 0010). Each task instance keeps its latest time-trigger fire; fires by an operator
 * (`tsflow triggers fire`) are not lateness and are not recorded. A range scan of ti_trigger_fired_idx.
 */
export async function waitLateness(db: Db, query: LatenessQuery = {}): Promise<LatenessReport> {
  const limit = query.limit ?? 1000;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LATENESS_LIMIT) {
    throw new InvalidWaitQueryError(`limit must be a whole number from 1 to ${MAX_LATENESS_LIMIT}, got ${limit}`);
  }
  if (query.since !== undefined && !Number.isFinite(query.since.getTime())) throw new InvalidWaitQueryError('since is not a valid date');
  const since = query.since ?? null;
  const { rows } = await sql<{ dag_id: string; run_id: string; task_id: string; trigger_fired_at: Date; trigger_lateness_ms: number }>`
    SELECT dag_id, run_id, task_id, trigger_fired_at, trigger_lateness_ms FROM task_instance
    WHERE trigger_fired_at IS NOT NULL AND trigger_fired_at >= coalesce(${since}::timestamptz, now() - interval '1 hour')
      AND trigger_lateness_ms IS NOT NULL
    ORDER BY trigger_fired_at DESC
    LIMIT ${limit}`.execute(db);
  const points = rows.map((r) => ({ dagId: r.dag_id, runId: r.run_id, taskId: r.task_id, firedAt: r.trigger_fired_at, latenessMs: r.trigger_lateness_ms }));
  const sorted = points.map((p) => p.latenessMs).sort((a, b) => a - b);
  const at = (q: number): number | null => (sorted.length === 0 ? null : (sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? null));
  return { points, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted.at(-1) ?? null };
}
