import { sql } from 'kysely';
import type { Db } from './database.ts';
import type { ApiRole } from './schema.ts';

/*
 * The API server's users, their API tokens and browser sessions. Secrets never reach this module in
 * a form a client could send back: tokens and session ids arrive as SHA-256 hashes, passwords as
 * scrypt hashes (src/api/credentials.ts).
 */

export const API_ROLES: readonly ApiRole[] = ['viewer', 'operator', 'admin'];

/** Whether `role` may do what `needed` may (viewer < operator < admin). */
export function roleAllows(role: ApiRole, needed: ApiRole): boolean {
  return API_ROLES.indexOf(role) >= API_ROLES.indexOf(needed);
}

export interface ApiUser {
  id: number;
  username: string;
  role: ApiRole;
  createdAt: Date;
}

export class UserExistsError extends Error {
  override name = 'UserExistsError';
}

export class UserNotFoundError extends Error {
  override name = 'UserNotFoundError';
}

const userColumns = ['id', 'username', 'role', 'created_at'] as const;
const toUser = (r: { id: number; username: string; role: ApiRole; created_at: Date }): ApiUser => ({ id: r.id, username: r.username, role: r.role, createdAt: r.created_at });

export async function createUser(db: Db, username: string, role: ApiRole, passwordHash: string): Promise<ApiUser> {
  const row = await db
    .insertInto('api_user')
    .values({ username, role, password_hash: passwordHash })
    .onConflict((oc) => oc.column('username').doNothing())
    .returning(userColumns)
    .executeTakeFirst();
  if (!row) throw new UserExistsError(`user '${username}' already exists: choose another name, or delete it first (tsflow users delete ${username})`);
  return toUser(row);
}

export async function listUsers(db: Db): Promise<ApiUser[]> {
  const rows = await db.selectFrom('api_user').select(userColumns).orderBy('username').execute();
  return rows.map(toUser);
}

/** Deletes a user with its sessions and tokens (cascade). */
export async function deleteUser(db: Db, username: string): Promise<ApiUser> {
  const row = await db.deleteFrom('api_user').where('username', '=', username).returning(userColumns).executeTakeFirst();
  if (!row) throw new UserNotFoundError(`user '${username}' does not exist (tsflow users list shows the users)`);
  return toUser(row);
}

/** The user and its password hash, for a login. */
export async function userForLogin(db: Db, username: string): Promise<(ApiUser & { passwordHash: string }) | undefined> {
  const row = await db.selectFrom('api_user').select([...userColumns, 'password_hash']).where('username', '=', username).executeTakeFirst();
  return row ? { ...toUser(row), passwordHash: row.password_hash } : undefined;
}

/** Stores a new API token's hash for `username`. */
export async function addToken(db: Db, username: string, tokenHash: string): Promise<void> {
  const { rows } = await sql`
    INSERT INTO api_token (token_hash, user_id) SELECT ${tokenHash}, id FROM api_user WHERE username = ${username}
    RETURNING id`.execute(db);
  if (rows.length === 0) throw new UserNotFoundError(`user '${username}' does not exist (tsflow users list shows the users)`);
}

/** The user an API token belongs to; records when it was last used (at most once a minute). */
export async function userForToken(db: Db, tokenHash: string): Promise<ApiUser | undefined> {
  const { rows } = await sql<{ id: number; username: string; role: ApiRole; created_at: Date }>`
    WITH used AS (
      UPDATE api_token SET last_used_at = now()
      WHERE token_hash = ${tokenHash} AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
    )
    SELECT u.id, u.username, u.role, u.created_at FROM api_token t JOIN api_user u ON u.id = t.user_id
    WHERE t.token_hash = ${tokenHash}`.execute(db);
  return rows[0] ? toUser(rows[0]) : undefined;
}

export async function createSession(db: Db, userId: number, idHash: string, csrfToken: string, ttlMs: number): Promise<Date> {
  const row = await db
    .insertInto('api_session')
    .values({ id_hash: idHash, user_id: userId, csrf_token: csrfToken, expires_at: sql<Date>`now() + make_interval(secs => ${ttlMs / 1000})` as unknown as Date })
    .returning('expires_at')
    .executeTakeFirstOrThrow();
  // Expired sessions go as new ones are made: the table stays the size of the live ones.
  await db.deleteFrom('api_session').where('expires_at', '<', sql<Date>`now()`).execute();
  return row.expires_at;
}

/** A live (unexpired) session's user and CSRF token. */
export async function userForSession(db: Db, idHash: string): Promise<{ user: ApiUser; csrfToken: string } | undefined> {
  const row = await db
    .selectFrom('api_session as s')
    .innerJoin('api_user as u', 'u.id', 's.user_id')
    .select(['u.id', 'u.username', 'u.role', 'u.created_at', 's.csrf_token'])
    .where('s.id_hash', '=', idHash)
    .where('s.expires_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return row ? { user: toUser(row), csrfToken: row.csrf_token } : undefined;
}

export async function deleteSession(db: Db, idHash: string): Promise<void> {
  await db.deleteFrom('api_session').where('id_hash', '=', idHash).execute();
}
