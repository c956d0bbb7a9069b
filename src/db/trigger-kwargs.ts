import type { JsonObject } from '../sdk/json.ts';
import { isEnvelope } from '../secrets/keyring.ts';
import { currentKeyring } from '../secrets/process-keyring.ts';

/*
 * The one codec of `trigger.kwargs` (Airflow encrypts trigger kwargs too). Every writer encodes with
 * `encodeTriggerKwargs` and every reader — the triggerer's claim, `triggers list`, anything that
 * describes a wait — decodes with `decodeTriggerKwargs`; nothing reads the column as JSON in SQL.
 *
 * Stored forms: an AES-256-GCM envelope of the JSON (`v1:KEYID:IV:DATA`) when the process has secret
 * keys (always in the embedded setup); the JSON text itself when it has none (TSFLOW_DATABASE_URL
 * without TSFLOW_SECRET_KEY: a warning at start says so) and for rows written before migration
 * 0009. Both forms are read, so a deployment upgrades without touching its waits;
 * `tsflow rotate-secrets` encrypts the plaintext rows.
 */

/** A trigger row's kwargs could not be read (their key is missing, or the text is damaged). */
export class TriggerKwargsDecodeError extends Error {
  override name = 'TriggerKwargsDecodeError';
}

/** The text stored in `trigger.kwargs` for `kwargs`: encrypted when this process has keys. */
export function encodeTriggerKwargs(kwargs: JsonObject): string {
  const json = JSON.stringify(kwargs);
  const keyring = currentKeyring();
  return keyring ? keyring.encrypt(json) : json;
}

/**
 * The kwargs stored as `stored` (the column's text; a JSON object is accepted too, for rows read
 * through a jsonb cast). `what` names the row in errors, e.g. `trigger 42`.
 */
export function decodeTriggerKwargs(stored: string | JsonObject, what = 'a trigger'): JsonObject {
  if (typeof stored !== 'string') return stored;
  let json = stored;
  if (isEnvelope(stored)) {
    const keyring = currentKeyring();
    if (!keyring) {
      throw new TriggerKwargsDecodeError(
        `the kwargs of ${what} are encrypted, but this process has no secret key: set TSFLOW_SECRET_KEY to the keys the other tsflow processes use`,
      );
    }
    try {
      json = keyring.decrypt(stored, `the kwargs of ${what}`);
    } catch (error) {
      throw new TriggerKwargsDecodeError((error as Error).message, { cause: error });
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new TriggerKwargsDecodeError(`the kwargs of ${what} are not JSON: the row is damaged`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TriggerKwargsDecodeError(`the kwargs of ${what} are not a JSON object: the row is damaged`);
  }
  return value as JsonObject;
}

/** `decodeTriggerKwargs`, but a failure is returned (for a batch read that must go on past a bad row). */
export function tryDecodeTriggerKwargs(stored: string | JsonObject, what: string): { kwargs: JsonObject; error?: string } {
  try {
    return { kwargs: decodeTriggerKwargs(stored, what) };
  } catch (error) {
    return { kwargs: {}, error: (error as Error).message };
  }
}
