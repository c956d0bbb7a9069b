import { sql, type Kysely } from 'kysely';

/**
 * Connections and variables (Airflow's `connection`, `variable`), and trigger kwargs encrypted at rest.
 * - `connection.password`, `connection.extra` and `variable.val` hold AES-256-GCM envelopes
 *   (`v1:KEYID:IV:DATA`, src/secrets/keyring.ts), never plaintext; login, host, port and schema are
 *   stored in clear, as Airflow does.
 * - `trigger.kwargs` becomes text: new rows hold an envelope of the kwargs' JSON. Rows written before
 *   this migration keep their JSON text and are still read (src/db/trigger-kwargs.ts tells the two
 *   forms apart); `tsflow rotate-secrets` encrypts them. Existing writers that insert jsonb still
 *   work: jsonb is assigned to text by its text form.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE connection (
    conn_id text PRIMARY KEY,
    conn_type text NOT NULL,
    description text,
    host text,
    schema text,
    login text,
    password text,
    port integer CHECK (port BETWEEN 1 AND 65535),
    extra text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db);
  await sql`CREATE TABLE variable (
    key text PRIMARY KEY,
    val text NOT NULL,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db);
  await sql`ALTER TABLE trigger ALTER COLUMN kwargs TYPE text USING kwargs::text`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM trigger WHERE kwargs LIKE 'v1:%'`.execute(db);
  if ((rows[0]?.n ?? 0) > 0) {
    throw new Error(`${rows[0]?.n} trigger rows hold encrypted kwargs, which jsonb cannot hold: let those waits finish (or clear their tasks) first`);
  }
  await sql`ALTER TABLE trigger ALTER COLUMN kwargs TYPE jsonb USING kwargs::jsonb`.execute(db);
  await sql`DROP TABLE variable`.execute(db);
  await sql`DROP TABLE connection`.execute(db);
}
