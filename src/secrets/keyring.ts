import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';

/*
 * Encryption at rest for connections, variables and trigger kwargs: AES-256-GCM (authenticated) from
 * node:crypto, one random 96-bit IV per value. A stored value is a versioned envelope
 *
 *   v1:<key id>:<iv, base64url>:<ciphertext + 16-byte tag, base64url>
 *
 * where the key id is the first 8 hex digits of the key's SHA-256, so a value whose key is no longer
 * configured can say which key it needs. Keys are 32 random bytes written in base64 or base64url
 * (`tsflow secrets generate-key`, or `openssl rand -base64 32`). A keyring holds one or more: the
 * first encrypts, all decrypt, which is how keys are rotated (Airflow's MultiFernet).
 */

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_TEXT = /^[A-Za-z0-9+/_-]{43}={0,1}$/;

/** A key that cannot be used, or a keyring that cannot be built: says which key and what to do. */
export class SecretKeyError extends Error {
  override name = 'SecretKeyError';
}

/** A value could not be decrypted: its key is missing, or it was altered. */
export class DecryptionError extends Error {
  override name = 'DecryptionError';
}

interface Key {
  readonly id: string;
  /** A KeyObject, made once: cheaper per call than handing the cipher raw bytes. */
  readonly key: KeyObject;
}

/** A fresh key, as TSFLOW_SECRET_KEY takes it (base64 of 32 random bytes). */
export function generateSecretKey(): string {
  return randomBytes(32).toString('base64');
}

/** True for text in the envelope form (anything else read from an encrypted column is legacy plaintext). */
export function isEnvelope(text: string): boolean {
  return text.startsWith(`${VERSION}:`);
}

/** The key id an envelope names, or undefined for text that is not one. */
export function envelopeKeyId(text: string): string | undefined {
  if (!isEnvelope(text)) return undefined;
  return text.split(':', 3)[1];
}

export class Keyring {
  readonly #keys: readonly Key[];
  readonly #byId: ReadonlyMap<string, Key>;
  /** Where the keys came from, for error messages (`TSFLOW_SECRET_KEY`, a key file). */
  readonly source: string;

  /** CSPRNG bytes fetched in bulk and handed out 12 at a time: one randomBytes call per 340 IVs, not one per value. */
  #ivPool = Buffer.alloc(0);
  #ivOffset = 0;

  private constructor(keys: readonly Key[], source: string) {
    this.#keys = keys;
    this.#byId = new Map(keys.map((k) => [k.id, k]));
    this.source = source;
  }

  /**
   * Parses comma-separated keys (`source` names where they came from, e.g. `TSFLOW_SECRET_KEY`). A bad
   * key is named by its position, never echoed.
   */
  static parse(text: string, source: string): Keyring {
    const parts = text.split(',').map((p) => p.trim());
    if (parts.every((p) => p === '')) throw new SecretKeyError(`${source} is empty: give one or more keys, comma-separated (generate one with tsflow secrets generate-key)`);
    const keys = parts.map((part, i) => {
      const which = parts.length > 1 ? `key ${i + 1} of ${source}` : source;
      if (part === '') throw new SecretKeyError(`${which} is empty: remove the extra comma`);
      if (!KEY_TEXT.test(part)) {
        throw new SecretKeyError(
          `${which} is not a key: a key is 32 random bytes in base64 or base64url (44 characters, e.g. from tsflow secrets generate-key or openssl rand -base64 32)`,
        );
      }
      const bytes = Buffer.from(part, 'base64');
      if (bytes.length !== 32) throw new SecretKeyError(`${which} decodes to ${bytes.length} bytes, not 32: generate one with tsflow secrets generate-key`);
      return { id: keyId(bytes), key: createSecretKey(bytes) };
    });
    return new Keyring(keys, source);
  }

  /** The key ids, the encrypting one first. */
  get keyIds(): string[] {
    return this.#keys.map((k) => k.id);
  }

  /** The id of the key new values are encrypted under. */
  get primaryKeyId(): string {
    return (this.#keys[0] as Key).id;
  }

  encrypt(plaintext: string): string {
    const key = this.#keys[0] as Key;
    const iv = this.#nextIv();
    const cipher = createCipheriv('aes-256-gcm', key.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}:${key.id}:${iv.toString('base64url')}:${body.toString('base64url')}`;
  }

  /** Decrypts an envelope; `what` names the value in errors (`connection 'my_db' password`). */
  decrypt(envelope: string, what: string): string {
    const parts = envelope.split(':');
    if (parts.length !== 4 || parts[0] !== VERSION) {
      throw new DecryptionError(`${what} is not an encrypted value this tsflow can read (expected ${VERSION}:KEY:IV:DATA)`);
    }
    const [, id, ivText, bodyText] = parts as [string, string, string, string];
    const key = this.#byId.get(id);
    if (!key) {
      throw new DecryptionError(
        `${what} is encrypted under key ${id}, which is not among the keys of ${this.source} (${this.keyIds.join(', ')}): ` +
          `add that key back to ${this.source} (after the first; keys are comma-separated), or store the value again`,
      );
    }
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new DecryptionError(`${what} is a truncated encrypted value (key ${id})`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.key, iv);
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (error) {
      throw new DecryptionError(`${what} failed authentication under key ${id}: the stored value was altered or corrupted`, { cause: error });
    }
  }

  #nextIv(): Buffer {
    if (this.#ivOffset + IV_BYTES > this.#ivPool.length) {
      this.#ivPool = randomBytes(IV_BYTES * 340);
      this.#ivOffset = 0;
    }
    const iv = this.#ivPool.subarray(this.#ivOffset, this.#ivOffset + IV_BYTES);
    this.#ivOffset += IV_BYTES;
    return iv;
  }

  /** True when `envelope` is already encrypted under the primary key (rotation skips it). */
  isCurrent(envelope: string): boolean {
    return envelopeKeyId(envelope) === this.primaryKeyId;
  }
}

function keyId(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 8);
}
