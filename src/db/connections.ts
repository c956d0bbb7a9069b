import { sql, type Selectable } from 'kysely';
import type { JsonObject } from '../sdk/json.ts';
import { checkConnId, type Connection, type ConnectionFields } from '../secrets/connection.ts';
import type { Keyring } from '../secrets/keyring.ts';
import { requireKeyring } from '../secrets/process-keyring.ts';
import type { Db } from './database.ts';
import type { ConnectionTable } from './schema.ts';

/*
 * The `connection` table. Password and extra are encrypted with the process's keyring before they
 * leave this module and decrypted when read; every other column is clear text (Airflow's split).
 */

/** A stored row, as read: its columns, without the timestamps. */
type ConnectionRow = Omit<Selectable<ConnectionTable>, 'created_at' | 'updated_at'>;

/** Creates or replaces connection `connId`. Refused (naming TSFLOW_SECRET_KEY) when the process has no key. */
export async function putConnection(db: Db, connId: string, fields: ConnectionFields): Promise<void> {
  checkConnId(connId);
  const keyring = requireKeyring();
  const row = {
    conn_id: connId,
    conn_type: fields.connType,
    description: fields.description,
    host: fields.host,
    schema: fields.schema,
    login: fields.login,
    password: fields.password === null ? null : keyring.encrypt(fields.password),
    port: fields.port,
    extra: Object.keys(fields.extra).length === 0 ? null : keyring.encrypt(JSON.stringify(fields.extra)),
  };
  await db
    .insertInto('connection')
    .values(row)
    .onConflict((oc) => oc.column('conn_id').doUpdateSet({ ...row, updated_at: sql`now()` }))
    .execute();
}

/** True when a connection of that id is stored (the environment is not consulted). */
export async function connectionExists(db: Db, connId: string): Promise<boolean> {
  return (await db.selectFrom('connection').select('conn_id').where('conn_id', '=', connId).executeTakeFirst()) !== undefined;
}

/** The stored connection, decrypted; undefined when there is none. */
export async function getStoredConnection(db: Db, connId: string): Promise<Connection | undefined> {
  const row = await db.selectFrom('connection').selectAll().where('conn_id', '=', connId).executeTakeFirst();
  return row ? decodeRow(row) : undefined;
}

/** Every stored connection, by id, decrypted. */
export async function listStoredConnections(db: Db): Promise<Connection[]> {
  const rows = await db.selectFrom('connection').selectAll().orderBy('conn_id').execute();
  return rows.map(decodeRow);
}

export async function deleteConnection(db: Db, connId: string): Promise<boolean> {
  const result = await db.deleteFrom('connection').where('conn_id', '=', connId).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

function decodeRow(row: ConnectionRow): Connection {
  const keyring = row.password === null && row.extra === null ? undefined : requireKeyring();
  const what = `connection '${row.conn_id}'`;
  return {
    connId: row.conn_id,
    connType: row.conn_type,
    description: row.description,
    host: row.host,
    port: row.port,
    login: row.login,
    schema: row.schema,
    password: row.password === null ? null : (keyring as Keyring).decrypt(row.password, `the password of ${what}`),
    extra: row.extra === null ? {} : (JSON.parse((keyring as Keyring).decrypt(row.extra, `the extra of ${what}`)) as JsonObject),
  };
}

/** Re-encrypts every password and extra not under the primary key (in the caller's transaction). Returns how many rows changed. */
export async function reencryptConnections(db: Db, keyring: Keyring): Promise<number> {
  const rows = await db.selectFrom('connection').select(['conn_id', 'password', 'extra']).forUpdate().execute();
  let changed = 0;
  for (const row of rows) {
    const what = `connection '${row.conn_id}'`;
    const password = row.password === null || keyring.isCurrent(row.password) ? row.password : keyring.encrypt(keyring.decrypt(row.password, `the password of ${what}`));
    const extra = row.extra === null || keyring.isCurrent(row.extra) ? row.extra : keyring.encrypt(keyring.decrypt(row.extra, `the extra of ${what}`));
    if (password === row.password && extra === row.extra) continue;
    await db.updateTable('connection').set({ password, extra }).where('conn_id', '=', row.conn_id).execute();
    changed++;
  }
  return changed;
}
