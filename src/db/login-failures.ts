import { sql } from 'kysely';
import type { Db } from './database.ts';

/*
 * Failed logins, counted per username and per client address within a window: the API server
 * refuses further attempts (429) once either count reaches the limit. In the database, so the limit
 * holds across restarts and across several API servers.
 */

export interface LoginLimit {
  /** Failures allowed within the window. @default 5 */
  maxFailures: number;
  /** @default 300_000 (5 minutes) */
  windowMs: number;
}

/**
 * Seconds until the username or the address may try again, or 0 when neither has reached the limit.
 * The wait ends when the oldest failure that still counts leaves the window.
 */
export async function loginRetryAfter(db: Db, username: string, clientIp: string, limit: LoginLimit): Promise<number> {
  const { rows } = await sql<{ wait: number | null }>`
    WITH recent AS (
      SELECT at, username = ${username} AS by_name, client_ip = ${clientIp} AS by_ip FROM login_failure
      WHERE (username = ${username} OR client_ip = ${clientIp}) AND at > now() - make_interval(secs => ${limit.windowMs / 1000})
    ),
    nth AS (
      SELECT (SELECT at FROM recent WHERE by_name ORDER BY at DESC OFFSET ${limit.maxFailures - 1} LIMIT 1) AS name_at,
             (SELECT at FROM recent WHERE by_ip ORDER BY at DESC OFFSET ${limit.maxFailures - 1} LIMIT 1) AS ip_at
    )
    SELECT ceil(extract(epoch FROM greatest(name_at, ip_at) + make_interval(secs => ${limit.windowMs / 1000}) - now()))::float8 AS wait FROM nth`.execute(db);
  const wait = rows[0]?.wait;
  return wait === null || wait === undefined ? 0 : Math.max(1, wait);
}

export async function recordLoginFailure(db: Db, username: string, clientIp: string, windowMs: number): Promise<void> {
  await db.insertInto('login_failure').values({ username, client_ip: clientIp }).execute();
  // Old rows are of no use to the limit; dropping them as new ones come keeps the table small.
  await db.deleteFrom('login_failure').where('at', '<', sql<Date>`now() - make_interval(secs => ${(windowMs * 2) / 1000})`).execute();
}

/** A successful login forgives the username's failures (not the address's). */
export async function clearLoginFailures(db: Db, username: string): Promise<void> {
  await db.deleteFrom('login_failure').where('username', '=', username).execute();
}
