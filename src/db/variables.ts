import { sql } from 'kysely';
import type { Keyring } from '../secrets/keyring.ts';
import { requireKeyring } from '../secrets/process-keyring.ts';
import type { Db } from './database.ts';

/* The `variable` table: values encrypted with the process's keyring (Airflow's `variable`). */

export interface Variable {
  readonly key: string;
  readonly value: string;
  readonly description: string | null;
}

export class InvalidVariableKeyError extends Error {
  override name = 'InvalidVariableKeyError';
}

const KEY = /^[A-Za-z0-9_.-]{1,250}$/;

export function checkVariableKey(key: string): string {
  if (!KEY.test(key)) throw new InvalidVariableKeyError(`variable key '${key.slice(0, 80)}' is not valid: use letters, digits, '_', '-' and '.' (at most 250)`);
  return key;
}

export async function setVariable(db: Db, key: string, value: string, description?: string | null): Promise<void> {
  checkVariableKey(key);
  const val = requireKeyring().encrypt(value);
  await db
    .insertInto('variable')
    .values({ key, val, description: description ?? null })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({ val, updated_at: sql`now()`, ...(description === undefined ? {} : { description }) }),
    )
    .execute();
}

export async function getStoredVariable(db: Db, key: string): Promise<Variable | undefined> {
  const row = await db.selectFrom('variable').select(['key', 'val', 'description']).where('key', '=', key).executeTakeFirst();
  return row ? { key: row.key, value: requireKeyring().decrypt(row.val, `variable '${row.key}'`), description: row.description } : undefined;
}

export async function listStoredVariables(db: Db): Promise<Variable[]> {
  const rows = await db.selectFrom('variable').select(['key', 'val', 'description']).orderBy('key').execute();
  if (rows.length === 0) return [];
  const keyring = requireKeyring();
  return rows.map((row) => ({ key: row.key, value: keyring.decrypt(row.val, `variable '${row.key}'`), description: row.description }));
}

/** The stored keys and descriptions, by key (nothing is decrypted). */
export async function listVariableKeys(db: Db): Promise<{ key: string; description: string | null }[]> {
  return db.selectFrom('variable').select(['key', 'description']).orderBy('key').execute();
}

export async function deleteVariable(db: Db, key: string): Promise<boolean> {
  const result = await db.deleteFrom('variable').where('key', '=', key).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Re-encrypts every value not under the primary key (in the caller's transaction). Returns how many changed. */
export async function reencryptVariables(db: Db, keyring: Keyring): Promise<number> {
  const rows = await db.selectFrom('variable').select(['key', 'val']).forUpdate().execute();
  let changed = 0;
  for (const row of rows) {
    if (keyring.isCurrent(row.val)) continue;
    const val = keyring.encrypt(keyring.decrypt(row.val, `variable '${row.key}'`));
    await db.updateTable('variable').set({ val }).where('key', '=', row.key).execute();
    changed++;
  }
  return changed;
}
