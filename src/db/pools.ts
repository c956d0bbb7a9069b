import { sql } from 'kysely';
import type { Db } from './database.ts';
import { Channels, notify } from './protocol.ts';
import type { PoolRow } from './schema.ts';

/*
 * Pools (Airflow's `slot_pool`): the table's own queries, shared by the scheduler's enqueue and by
 * `tsflow pools` (and, later, the API).
 */

export const DEFAULT_POOL_NAME = 'default_pool';

/** What a pool holds now. `open` is null for an unlimited pool (slots = -1). */
export interface PoolStats {
  pool: string;
  slots: number;
  description: string | null;
  includeDeferred: boolean;
  running: number;
  queued: number;
  deferred: number;
  open: number | null;
}

export class PoolNotFoundError extends Error {
  override name = 'PoolNotFoundError';
  readonly pool: string;
  constructor(pool: string) {
    super(`pool '${pool}' does not exist (tsflow pools list shows the pools)`);
    this.pool = pool;
  }
}

export class InvalidPoolError extends Error {
  override name = 'InvalidPoolError';
}

/**
 * Slots occupied per pool: Σ pool_slots of queued and running task instances, plus deferred ones
 * when the pool has `include_deferred` (ti_pool_occupied_idx). Scheduled ones take none.
 */
function statsQuery(pools: readonly string[] | null) {
  return sql<PoolStatsRow>`
    SELECT p.pool, p.slots, p.description, p.include_deferred,
      coalesce(sum(t.pool_slots) FILTER (WHERE t.state = 'running'), 0)::int AS running,
      coalesce(sum(t.pool_slots) FILTER (WHERE t.state = 'queued'), 0)::int AS queued,
      coalesce(sum(t.pool_slots) FILTER (WHERE t.state = 'deferred'), 0)::int AS deferred
    FROM pool p
    LEFT JOIN task_instance t ON t.pool = p.pool AND t.state IN ('queued', 'running', 'deferred')
    WHERE ${pools ? [...pools] : null}::text[] IS NULL OR p.pool = ANY(${pools ? [...pools] : null}::text[])
    GROUP BY p.pool
    ORDER BY p.pool COLLATE "C"`;
}

interface PoolStatsRow {
  pool: string;
  slots: number;
  description: string | null;
  include_deferred: boolean;
  running: number;
  queued: number;
  deferred: number;
}

function toStats(r: PoolStatsRow): PoolStats {
  const occupied = r.running + r.queued + (r.include_deferred ? r.deferred : 0);
  return {
    pool: r.pool,
    slots: r.slots,
    description: r.description,
    includeDeferred: r.include_deferred,
    running: r.running,
    queued: r.queued,
    deferred: r.deferred,
    open: r.slots === -1 ? null : r.slots - occupied,
  };
}

/** Every pool (or those named), by name, with its occupied and open slots. */
export async function listPools(db: Db, pools?: readonly string[]): Promise<PoolStats[]> {
  const { rows } = await statsQuery(pools ?? null).execute(db);
  return rows.map(toStats);
}

export async function getPool(db: Db, pool: string): Promise<PoolStats> {
  const [stats] = await listPools(db, [pool]);
  if (!stats) throw new PoolNotFoundError(pool);
  return stats;
}

export interface PoolInput {
  pool: string;
  /** -1: unlimited. */
  slots: number;
  description?: string | null;
  includeDeferred?: boolean;
}

/** Checks a pool's fields before anything is written; throws InvalidPoolError naming the value. */
export function validatePool(input: PoolInput): void {
  if (input.pool.trim().length === 0) throw new InvalidPoolError('a pool name cannot be empty');
  if (input.pool.length > 256) throw new InvalidPoolError(`pool name '${input.pool.slice(0, 40)}…' is longer than 256 characters`);
  if (!Number.isInteger(input.slots) || input.slots < -1) {
    throw new InvalidPoolError(`pool '${input.pool}': slots must be a whole number ≥ 0, or -1 for unlimited; got ${input.slots}`);
  }
}

/**
 * Creates a pool or updates it (Airflow's `pools set`). Fields not given keep their value on an
 * update. Takes the pool's row lock, so it waits for an enqueue counting this pool to commit.
 */
export async function setPool(db: Db, input: PoolInput): Promise<PoolRow> {
  validatePool(input);
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<PoolRow>`
      INSERT INTO pool (pool, slots, description, include_deferred)
      VALUES (${input.pool}, ${input.slots}, ${input.description ?? null}, ${input.includeDeferred ?? false})
      ON CONFLICT (pool) DO UPDATE SET
        slots = excluded.slots,
        description = CASE WHEN ${input.description === undefined} THEN pool.description ELSE excluded.description END,
        include_deferred = CASE WHEN ${input.includeDeferred === undefined} THEN pool.include_deferred ELSE excluded.include_deferred END
      RETURNING *`.execute(trx);
    // Tasks waiting for this pool (missing until now, or too big, or it was full) may fit: schedulers look now.
    await notify(trx, Channels.ti, 'pool');
    return rows[0]!;
  });
}

/**
 * Deletes a pool. `default_pool` cannot be deleted. As in Airflow, a pool that task instances occupy
 * (queued, running or deferred) may be deleted: they finish, and their later tries, like every
 * task that names the pool, wait until it exists again (the scheduler warns). Returns the pool's
 * stats as they were.
 */
export async function deletePool(db: Db, pool: string): Promise<PoolStats> {
  if (pool === DEFAULT_POOL_NAME) throw new InvalidPoolError(`${DEFAULT_POOL_NAME} cannot be deleted (resize it with tsflow pools set instead)`);
  return db.transaction().execute(async (trx) => {
    const before = await getPool(trx, pool);
    await trx.deleteFrom('pool').where('pool', '=', pool).execute();
    return before;
  });
}

/** A pool the enqueue counted: its free slots (null: unlimited) and its total, both in pool_slots. */
export interface PoolRoom {
  pool: string;
  slots: number;
  open: number | null;
}

/**
 * The enqueue's part: locks the rows of the `pools` that exist, in name order (so two schedulers
 * never deadlock on them; callers lock `dag` rows first, always), then counts their open slots in a
 * second statement — one that waited for the lock would count with its old snapshot and miss what
 * the previous holder just queued. Pools missing from the result do not exist.
 */
export async function lockPoolRooms(trx: Db, pools: readonly string[]): Promise<PoolRoom[]> {
  if (pools.length === 0) return [];
  const { rows: locked } = await sql<{ pool: string }>`
    SELECT pool FROM pool WHERE pool = ANY(${[...pools]}::text[]) ORDER BY pool COLLATE "C" FOR UPDATE`.execute(trx);
  if (locked.length === 0) return [];
  const { rows } = await statsQuery(locked.map((r) => r.pool)).execute(trx);
  return rows.map(toStats).map((s) => ({ pool: s.pool, slots: s.slots, open: s.open }));
}
