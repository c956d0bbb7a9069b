import type { Connection, TaskContext } from '../sdk/context.ts';

/*
 * `var.value.KEY`, `var.json.KEY` and `conn.ID.host` in templates. Nunjucks renders synchronously
 * while variables and connections are fetched asynchronously, so the renderer works in passes: a pass
 * that names something not fetched yet records it (and sees a placeholder); the renderer fetches
 * everything recorded, then renders again. Whatever syntax names the key (`var.value.k`,
 * `var.value['k']`, a key computed in the template) is found, because it is the lookup itself that
 * records it. A key that does not exist raises its error (naming the key) when the next pass reads it.
 */

type LookupKind = 'var' | 'json' | 'conn';
type Fetched = { ok: true; value: unknown } | { ok: false; error: unknown };

/** What a template sees of a connection: Airflow's `Connection` attributes. */
export interface TemplateConnection {
  conn_id: string;
  conn_type: string;
  description: string | null;
  host: string | null;
  login: string | null;
  password: string | null;
  schema: string | null;
  port: number | null;
  /** The extra as JSON text. */
  extra: string;
  extra_dejson: Connection['extra'];
}

/** Names that belong to the object itself (printing it, nunjucks' checks), never a variable or connection id. */
const OWN_NAMES = new Set(['toString', 'valueOf', 'toJSON', 'constructor', 'then', 'inspect', '__keywords']);

export class TemplateLookups {
  readonly #context: TaskContext;
  readonly #fetched = new Map<string, Fetched>();
  readonly #pending = new Map<string, { kind: LookupKind; key: string }>();
  /** The key of the last lookup whose error a template raised: the renderer uses it to find the line. */
  lastFailedKey: string | undefined;

  constructor(context: TaskContext) {
    this.#context = context;
  }

  /** How many lookups the last pass recorded that are not fetched yet. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The `var` and `conn` names of the template context. */
  names(): { var: { value: object; json: object }; conn: object } {
    return {
      var: { value: this.#proxy('var', ''), json: this.#proxy('json', null) },
      conn: this.#proxy('conn', {}),
    };
  }

  /** Fetches every recorded lookup, keeping failures (an unknown key) to raise where the template reads it. */
  async fetchPending(): Promise<void> {
    const pending = [...this.#pending.entries()];
    this.#pending.clear();
    await Promise.all(
      pending.map(async ([id, { kind, key }]) => {
        try {
          this.#fetched.set(id, { ok: true, value: await this.#fetch(kind, key) });
        } catch (error) {
          this.#fetched.set(id, { ok: false, error });
        }
      }),
    );
  }

  async #fetch(kind: LookupKind, key: string): Promise<unknown> {
    if (kind === 'var') return this.#context.getVariable(key);
    if (kind === 'json') return this.#context.getVariable(key, { json: true });
    return toTemplateConnection(await this.#context.getConnection(key));
  }

  /** `var.value` and friends: any attribute is a key; `.get(key, default)` as Airflow's. */
  #proxy(kind: LookupKind, placeholder: unknown): object {
    const read = (key: string, fallback?: { value: unknown }): unknown => {
      const id = `${kind}:${key}`;
      const fetched = this.#fetched.get(id);
      if (!fetched) {
        this.#pending.set(id, { kind, key });
        return fallback ? fallback.value : placeholder;
      }
      if (fetched.ok) return fetched.value;
      if (fallback) return fallback.value;
      this.lastFailedKey = key;
      throw fetched.error;
    };
    return new Proxy(
      {},
      {
        get: (target, property) => {
          if (typeof property !== 'string' || OWN_NAMES.has(property)) return Reflect.get(target, property) as unknown;
          if (property === 'get') return (key: unknown, fallback: unknown = null) => read(String(key), { value: fallback });
          return read(property);
        },
      },
    );
  }
}

function toTemplateConnection(c: Connection): TemplateConnection {
  return {
    conn_id: c.connId,
    conn_type: c.connType,
    description: c.description,
    host: c.host,
    login: c.login,
    password: c.password,
    schema: c.schema,
    port: c.port,
    extra: JSON.stringify(c.extra),
    extra_dejson: c.extra,
  };
}
