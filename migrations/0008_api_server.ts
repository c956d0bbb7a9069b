import { sql, type Kysely } from 'kysely';

/**
 * The API server's tables (issue 14):
 * - `api_user`: a login with one role (viewer < operator < admin); the password as an scrypt hash
 *   with its parameters and salt (`scrypt$N$r$p$salt$hash`), never the password.
 * - `api_session`: a browser session; the cookie carries a random id, the row holds only its SHA-256,
 *   so a leaked table gives no usable cookie. `csrf_token` is sent back in `X-CSRF-Token`.
 * - `api_token`: tokens for scripts (`Authorization: Bearer`), stored as SHA-256 hashes only.
 * - `login_failure`: failed logins, counted per username and per client address to rate-limit them;
 *   a table rather than memory, so the limit holds across restarts and across API servers.
 * - `audit_log`: every state change made through the API: who, what, on what, when.
 * - `dag_run_dag_logical_idx`: the API lists a DAG's runs ordered by logical date.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE api_user (
    id bigserial PRIMARY KEY,
    username text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db);
  await sql`CREATE TABLE api_session (
    id_hash text PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES api_user (id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
  )`.execute(db);
  await sql`CREATE INDEX api_session_user_idx ON api_session (user_id)`.execute(db);
  await sql`CREATE TABLE api_token (
    id bigserial PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    user_id bigint NOT NULL REFERENCES api_user (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
  )`.execute(db);
  await sql`CREATE INDEX api_token_user_idx ON api_token (user_id)`.execute(db);
  await sql`CREATE TABLE login_failure (
    id bigserial PRIMARY KEY,
    username text NOT NULL,
    client_ip text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
  )`.execute(db);
  await sql`CREATE INDEX login_failure_username_idx ON login_failure (username, at)`.execute(db);
  await sql`CREATE INDEX login_failure_ip_idx ON login_failure (client_ip, at)`.execute(db);
  await sql`CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    username text,
    action text NOT NULL,
    target text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb
  )`.execute(db);
  await sql`CREATE INDEX audit_log_at_idx ON audit_log (at)`.execute(db);
  await sql`CREATE INDEX dag_run_dag_logical_idx ON dag_run (dag_id, logical_date)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX dag_run_dag_logical_idx`.execute(db);
  await sql`DROP TABLE audit_log`.execute(db);
  await sql`DROP TABLE login_failure`.execute(db);
  await sql`DROP TABLE api_token`.execute(db);
  await sql`DROP TABLE api_session`.execute(db);
  await sql`DROP TABLE api_user`.execute(db);
}
