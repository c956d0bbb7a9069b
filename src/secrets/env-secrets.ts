import { connectionEnvName, ConnectionNotFoundError, parseConnectionJson, parseConnectionUri, type Connection } from './connection.ts';
import { isSensitiveName, processMasker } from './masker.ts';

/*
 * The environment "secrets backend" (Airflow's EnvironmentVariablesBackend): `TSFLOW_CONN_<ID>` (a
 * URI, or JSON when it starts with '{') and `TSFLOW_VAR_<KEY>`, the id or key upper-cased. Read at
 * lookup time, so each machine's own environment counts. No database here: a trigger or a test run
 * without one can still use it.
 */

export type Environment = Readonly<Record<string, string | undefined>>;

/** `TSFLOW_VAR_MY_KEY` for `my_key`. */
export function variableEnvName(key: string): string {
  return `TSFLOW_VAR_${key.toUpperCase()}`;
}

/** The connection `connId` as the environment defines it, or undefined. */
export function connectionFromEnvironment(connId: string, env: Environment = process.env): Connection | undefined {
  const envName = connectionEnvName(connId);
  const text = env[envName]?.trim();
  if (text === undefined || text === '') return undefined;
  const fields = text.startsWith('{') ? parseConnectionJson(text, envName) : parseConnectionUri(text, envName);
  return { connId, ...fields };
}

/** The variable `key` as the environment defines it, or undefined. */
export function variableFromEnvironment(key: string, env: Environment = process.env): string | undefined {
  return env[variableEnvName(key)];
}

/** The environment-only lookup, for code that runs without a database (a trigger outside a triggerer). */
export function environmentConnection(connId: string, env: Environment = process.env): Connection {
  const connection = connectionFromEnvironment(connId, env);
  if (!connection) throw new ConnectionNotFoundError(connId);
  registerConnectionSecrets(connection);
  return connection;
}

/** Registers a connection's password and the sensitive-looking values of its extra with the process's masker. */
export function registerConnectionSecrets(connection: Connection): void {
  if (connection.password !== null) processMasker.add(connection.password);
  for (const [key, value] of Object.entries(connection.extra)) {
    if (isSensitiveName(key)) processMasker.addAll(value);
  }
}
