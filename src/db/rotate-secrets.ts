import { sql } from 'kysely';
import type { Keyring } from '../secrets/keyring.ts';
import { reencryptConnections } from './connections.ts';
import type { Db } from './database.ts';
import { decodeTriggerKwargs } from './trigger-kwargs.ts';
import { reencryptVariables } from './variables.ts';

export interface RotationResult {
  connections: number;
  variables: number;
  triggers: number;
}

const TRIGGER_BATCH = 500;

/**
 * `tsflow rotate-secrets` (Airflow's `rotate-fernet-key`): in ONE transaction, re-encrypts under the
 * keyring's first key every connection password and extra, every variable, and every trigger's
 * kwargs (including rows stored as plain JSON before migration 0009 or without a key) that is not
 * under it yet. Values are decrypted with any of the keyring's keys, so the procedure is: put the new
 * key first in TSFLOW_SECRET_KEY (keeping the old one after it) everywhere, rotate, then drop the old.
 * Trigger rows are locked FOR UPDATE in id order (the claim skips locked rows; an event write
 * waits a moment).
 */
export async function rotateSecrets(db: Db, keyring: Keyring): Promise<RotationResult> {
  return db.transaction().execute(async (trx) => {
    const connections = await reencryptConnections(trx, keyring);
    const variables = await reencryptVariables(trx, keyring);
    let triggers = 0;
    const current = `v1:${keyring.primaryKeyId}:%`;
    for (let after = 0; ; ) {
      const { rows } = await sql<{ id: number; kwargs: string }>`
        SELECT id, kwargs FROM trigger WHERE id > ${after} AND kwargs NOT LIKE ${current}
        ORDER BY id LIMIT ${TRIGGER_BATCH} FOR UPDATE`.execute(trx);
      if (rows.length === 0) break;
      const ids = rows.map((r) => r.id);
      const texts = rows.map((r) => keyring.encrypt(JSON.stringify(decodeWith(keyring, r.kwargs, r.id))));
      await sql`UPDATE trigger t SET kwargs = u.kwargs FROM unnest(${ids}::bigint[], ${texts}::text[]) AS u(id, kwargs) WHERE t.id = u.id`.execute(trx);
      triggers += rows.length;
      after = ids[ids.length - 1] as number;
    }
    return { connections, variables, triggers };
  });
}

function decodeWith(keyring: Keyring, stored: string, id: number) {
  // decodeTriggerKwargs uses the process keyring, which is this one in the CLI; decrypt here anyway
  // so rotation does not depend on what was installed.
  return stored.startsWith('v1:') ? (JSON.parse(keyring.decrypt(stored, `the kwargs of trigger ${id}`)) as object) : decodeTriggerKwargs(stored, `trigger ${id}`);
}
