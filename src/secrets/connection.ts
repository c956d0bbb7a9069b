import type { JsonObject } from '../sdk/json.ts';

/*
 * A connection (Airflow's `Connection`): where a service is and how to log in to it. Parsed from
 * Airflow's URI form (`type://login:password@host:port/schema?extra=…`) or its JSON form. Errors name
 * the part that is wrong and never echo a password.
 */

export interface Connection {
  readonly connId: string;
  /** From the URI scheme: `postgresql` → `postgres`, `-` → `_` (Airflow's rule). */
  readonly connType: string;
  readonly description: string | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly login: string | null;
  readonly password: string | null;
  /** The URI path (a database name, a base path). */
  readonly schema: string | null;
  readonly extra: JsonObject;
}

export type ConnectionFields = Omit<Connection, 'connId'>;

/** A connection URI or JSON that cannot be read: says which part is wrong. */
export class InvalidConnectionError extends Error {
  override name = 'InvalidConnectionError';
}

/** A connection id nobody defined: names it and where it can be defined. */
export class ConnectionNotFoundError extends Error {
  override name = 'ConnectionNotFoundError';
  constructor(connId: string) {
    super(`connection '${connId}' is not defined: add it with tsflow connections add ${connId} --uri …, or set ${connectionEnvName(connId)}`);
  }
}

const CONN_ID = /^[A-Za-z0-9_.-]{1,250}$/;

export function checkConnId(connId: string): string {
  if (!CONN_ID.test(connId)) {
    throw new InvalidConnectionError(`connection id '${connId.slice(0, 80)}' is not valid: use letters, digits, '_', '-' and '.' (at most 250)`);
  }
  return connId;
}

/** `TSFLOW_CONN_MY_DB` for `my_db` (Airflow's upper-casing rule). */
export function connectionEnvName(connId: string): string {
  return `TSFLOW_CONN_${connId.toUpperCase()}`;
}

/** Airflow's URI form. `label` names the source in errors (`--uri`, `TSFLOW_CONN_MY_DB`). */
export function parseConnectionUri(uri: string, label: string): ConnectionFields {
  const separators = uri.split('://').length - 1;
  if (separators === 0) throw new InvalidConnectionError(`${label}: the scheme (connection type) is missing: a connection URI starts with TYPE://, e.g. postgres://user:pass@host:5432/db`);
  if (separators > 2) throw new InvalidConnectionError(`${label}: '://' appears ${separators} times; at most twice (TYPE://PROTOCOL://host)`);
  const schemeEnd = uri.indexOf('://');
  const scheme = uri.slice(0, schemeEnd);
  if (!/^[A-Za-z][A-Za-z0-9+.-]*$/.test(scheme)) {
    throw new InvalidConnectionError(`${label}: the scheme '${scheme.slice(0, 40)}' is not valid: it is the connection type, letters first (postgres, http, …)`);
  }
  const connType = scheme === 'postgresql' ? 'postgres' : scheme.replaceAll('-', '_');
  let rest = uri.slice(schemeEnd + 3);
  // `http://https://host` : the host keeps its own protocol.
  let hostProtocol = '';
  const inner = rest.indexOf('://');
  if (inner !== -1) {
    hostProtocol = rest.slice(0, inner + 3);
    rest = rest.slice(inner + 3);
  }
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const queryAt = rest.indexOf('?');
  const query = queryAt === -1 ? '' : rest.slice(queryAt + 1);
  if (queryAt !== -1) rest = rest.slice(0, queryAt);
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : authority.slice(0, at);
  const hostPort = at === -1 ? authority : authority.slice(at + 1);
  let login: string | null = null;
  let password: string | null = null;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    login = decodePart(colon === -1 ? userinfo : userinfo.slice(0, colon), `${label}: the login`) || null;
    password = colon === -1 ? null : decodePart(userinfo.slice(colon + 1), `${label}: the password`) || null;
  }
  const { host, port } = splitHostPort(hostPort, label);
  return {
    connType,
    description: null,
    host: host === '' ? null : hostProtocol + decodePart(host, `${label}: the host`),
    port,
    login,
    password,
    schema: path === '' ? null : decodePart(path, `${label}: the path (schema)`),
    extra: parseQuery(query, label),
  };
}

/** Airflow's JSON form: conn_type, host, login, password, schema, port, extra (object or JSON string), description. */
export function parseConnectionJson(text: string, label: string): ConnectionFields {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidConnectionError(`${label} starts with '{' but is not valid JSON`);
  }
  return connectionFromObject(value, label);
}

export function connectionFromObject(value: unknown, label: string): ConnectionFields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidConnectionError(`${label} must be a JSON object`);
  const o = value as Record<string, unknown>;
  const known = ['conn_type', 'host', 'login', 'password', 'schema', 'port', 'extra', 'description', 'conn_id'];
  const unknown = Object.keys(o).find((k) => !known.includes(k));
  if (unknown !== undefined) throw new InvalidConnectionError(`${label} has the field '${unknown}'; the fields are ${known.join(', ')}`);
  const text = (field: string): string | null => {
    const v = o[field];
    if (v === undefined || v === null || v === '') return null;
    if (typeof v !== 'string') throw new InvalidConnectionError(`${label}: ${field} must be a string`);
    return v;
  };
  const connType = text('conn_type');
  if (connType === null) throw new InvalidConnectionError(`${label}: conn_type is missing (http, postgres, …)`);
  let port: number | null = null;
  if (o['port'] !== undefined && o['port'] !== null && o['port'] !== '') port = checkPort(String(o['port']), label);
  let extra: JsonObject = {};
  const rawExtra = o['extra'];
  if (typeof rawExtra === 'string' && rawExtra !== '') extra = parseExtra(rawExtra, `${label}: extra`);
  else if (rawExtra !== undefined && rawExtra !== null && rawExtra !== '') {
    if (typeof rawExtra !== 'object' || Array.isArray(rawExtra)) throw new InvalidConnectionError(`${label}: extra must be a JSON object`);
    extra = rawExtra as JsonObject;
  }
  return {
    connType: connType.replaceAll('-', '_'),
    description: text('description'),
    host: text('host'),
    port,
    login: text('login'),
    password: text('password'),
    schema: text('schema'),
    extra,
  };
}

/** Airflow's export shape of a connection (what `connections export` writes and `import` reads). */
export function connectionToObject(c: Connection): JsonObject {
  return {
    conn_type: c.connType,
    description: c.description,
    host: c.host,
    login: c.login,
    password: c.password,
    schema: c.schema,
    port: c.port,
    extra: c.extra,
  };
}

/** The connection as a URI (password percent-encoded), Airflow's `get_uri`. */
export function connectionToUri(c: ConnectionFields): string {
  const type = c.connType.replaceAll('_', '-');
  let authority = '';
  if (c.login !== null || c.password !== null) {
    authority = `${encodeURIComponent(c.login ?? '')}${c.password !== null ? `:${encodeURIComponent(c.password)}` : ''}@`;
  }
  let host = c.host ?? '';
  let protocol = '';
  const inner = host.indexOf('://');
  if (inner !== -1) {
    protocol = host.slice(0, inner + 3);
    host = host.slice(inner + 3);
  }
  authority += encodeURIComponent(host) + (c.port !== null ? `:${c.port}` : '');
  const path = c.schema !== null ? `/${encodeURIComponent(c.schema)}` : '';
  const query = Object.keys(c.extra).length > 0 ? `?${new URLSearchParams({ __extra__: JSON.stringify(c.extra) }).toString()}` : '';
  return `${type}://${protocol}${authority}${path}${query}`;
}

function decodePart(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new InvalidConnectionError(`${what} is not valid percent-encoding: write special characters as %XX (e.g. '@' as %40, ':' as %3A, '/' as %2F)`);
  }
}

function splitHostPort(hostPort: string, label: string): { host: string; port: number | null } {
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close === -1) throw new InvalidConnectionError(`${label}: the host '${hostPort.slice(0, 80)}' opens '[' (an IPv6 address) without closing it`);
    const after = hostPort.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw new InvalidConnectionError(`${label}: unexpected '${after.slice(0, 40)}' after the IPv6 host`);
    return { host: hostPort.slice(0, close + 1), port: after === '' ? null : checkPort(after.slice(1), label) };
  }
  const colon = hostPort.lastIndexOf(':');
  if (colon === -1) return { host: hostPort, port: null };
  return { host: hostPort.slice(0, colon), port: checkPort(hostPort.slice(colon + 1), label) };
}

function checkPort(text: string, label: string): number {
  const port = Number(text);
  // What is not digits is not echoed: with a '/', '@' or '?' left unencoded in a password, the text
  // after the last ':' of the host part may be the password itself.
  if (!/^\d+$/.test(text)) {
    throw new InvalidConnectionError(
      `${label}: the port is not a number from 1 to 65535 (if the password holds '/', '@', ':', '?' or '#', percent-encode them: %2F, %40, %3A, %3F, %23)`,
    );
  }
  if (port < 1 || port > 65535) throw new InvalidConnectionError(`${label}: the port '${text.slice(0, 20)}' is not a number from 1 to 65535`);
  return port;
}

function parseQuery(query: string, label: string): JsonObject {
  if (query === '') return {};
  const params = new URLSearchParams(query);
  const raw = params.get('__extra__');
  if (raw !== null) {
    if ([...params.keys()].length > 1) throw new InvalidConnectionError(`${label}: the query has __extra__ and other parameters; give one or the other`);
    return parseExtra(raw, `${label}: the __extra__ query parameter`);
  }
  const extra: Record<string, string | string[]> = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    extra[key] = values.length === 1 ? (values[0] as string) : values;
  }
  return extra;
}

function parseExtra(text: string, what: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidConnectionError(`${what} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidConnectionError(`${what} must be a JSON object`);
  return value as JsonObject;
}
