/*
 * Secret masking (Airflow's secrets_masker): every value registered here — connection passwords,
 * variables whose key looks secret, anything given to `maskSecret` — is replaced by `***` wherever
 * it appears in a log line, an error or CLI output, inside longer text and URLs too. Values are
 * matched as given, percent-encoded (a password in a URL) and JSON-escaped (a value inside a JSON
 * log line), longest first, so a secret containing another is replaced whole.
 */

export const MASK = '***';

/** Airflow's DEFAULT_SENSITIVE_FIELDS: a name containing one of these (any case) holds a secret. */
export const SENSITIVE_NAMES: readonly string[] = [
  'access_key',
  'access_token',
  'api_key',
  'apikey',
  'auth_header',
  'authorization',
  'bearer',
  'connection_string',
  'dsn',
  'passphrase',
  'passwd',
  'password',
  'private_key',
  'proxy',
  'proxy_password',
  'proxies',
  'secret',
  'service_account',
  'service_key',
  'token',
  'keyfile_dict',
  'webhook_url',
];

/** Shorter values are not masked (Airflow's min_length_masked_secret): they would blank out ordinary words. */
export const MIN_MASKED_LENGTH = 5;

/** True when a variable key, a field or a header name looks like it holds a secret (`db_password`, `X-Api-Key`). */
export function isSensitiveName(name: string): boolean {
  const lower = name.toLowerCase().replaceAll('-', '_');
  return SENSITIVE_NAMES.some((s) => lower.includes(s));
}

export class SecretMasker {
  readonly #values = new Set<string>();
  #pattern: RegExp | undefined;

  /** Registers a secret; values shorter than MIN_MASKED_LENGTH are ignored. */
  add(value: string): void {
    if (typeof value !== 'string' || value.length < MIN_MASKED_LENGTH) return;
    const before = this.#values.size;
    for (const form of [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1), JSON.stringify(JSON.stringify(value)).slice(3, -3)]) {
      if (form.length >= MIN_MASKED_LENGTH) this.#values.add(form);
    }
    if (this.#values.size !== before) this.#pattern = undefined;
  }

  /** Registers every string in a JSON value (the values of a connection's extra). */
  addAll(value: unknown): void {
    if (typeof value === 'string') this.add(value);
    else if (Array.isArray(value)) for (const v of value) this.addAll(v);
    else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) this.addAll(v);
  }

  get size(): number {
    return this.#values.size;
  }

  /** `text` with every registered secret replaced by `***`. */
  mask(text: string): string {
    if (this.#values.size === 0 || text.length < MIN_MASKED_LENGTH) return text;
    this.#pattern ??= new RegExp([...this.#values].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g');
    return text.replace(this.#pattern, MASK);
  }

  /**
   * A JSON value with registered secrets masked in its strings, and the values of sensitive-looking
   * keys (`password`, `headers.Authorization`, …) replaced by `***` whatever they are.
   */
  maskJson<T>(value: T): T {
    return this.#maskJson(value, undefined) as T;
  }

  #maskJson(value: unknown, key: string | undefined): unknown {
    if (key !== undefined && isSensitiveName(key) && value !== null && value !== '') return MASK;
    if (typeof value === 'string') return this.mask(value);
    if (Array.isArray(value)) return value.map((v) => this.#maskJson(v, undefined));
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.#maskJson(v, k)]));
    }
    return value;
  }
}

/*
 * The process's masker, on purpose module-level (as Airflow's): a secret fetched by a task's code
 * must be masked by every logger of that process, including ones created before it was fetched.
 * It only grows, and only with values, so sharing it cannot change behaviour between two daemons
 * in one process except to mask more.
 */
export const processMasker = new SecretMasker();

/** Masks `value` (a password, a token) in every log line, error and CLI output of this process from now on. */
export function maskSecret(value: string): void {
  processMasker.add(value);
}

/** Masks this process's registered secrets in `text`. */
export function maskText(text: string): string {
  return processMasker.mask(text);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
