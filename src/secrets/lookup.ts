import { getStoredConnection } from '../db/connections.ts';
import type { Db } from '../db/database.ts';
import { getStoredVariable } from '../db/variables.ts';
import type { VariableOptions } from '../sdk/context.ts';
import { ConnectionNotFoundError, type Connection } from './connection.ts';
import { connectionFromEnvironment, registerConnectionSecrets, variableEnvName, variableFromEnvironment, type Environment } from './env-secrets.ts';
import { isSensitiveName, processMasker } from './masker.ts';

/*
 * Where a task or a trigger gets a connection or a variable: the environment first
 * (`TSFLOW_CONN_<ID>`, `TSFLOW_VAR_<KEY>`, upper-cased as Airflow does), then the database.
 * Whatever is returned is registered with the process's masker first: a password, the
 * sensitive-looking values of a connection's extra, a variable whose key looks secret.
 */

/** The connection `connId`, or ConnectionNotFoundError naming it. Without `db`, the environment only. */
export async function lookupConnection(db: Db | undefined, connId: string, env: Environment = process.env): Promise<Connection> {
  let connection = connectionFromEnvironment(connId, env);
  if (!connection && db) connection = await getStoredConnection(db, connId);
  if (!connection) throw new ConnectionNotFoundError(connId);
  registerConnectionSecrets(connection);
  return connection;
}

export class VariableNotFoundError extends Error {
  override name = 'VariableNotFoundError';
  constructor(key: string) {
    super(`variable '${key}' is not defined: set it with tsflow variables set ${key} VALUE, or set ${variableEnvName(key)}, or pass a default`);
  }
}

/** The variable `key` (environment first), or `options.default`, or VariableNotFoundError. */
export async function lookupVariable<T = string>(db: Db | undefined, key: string, options: VariableOptions<T> = {}, env: Environment = process.env): Promise<string | T> {
  let value = variableFromEnvironment(key, env);
  if (value === undefined && db) value = (await getStoredVariable(db, key))?.value;
  if (value === undefined) {
    if ('default' in options) return options.default as T;
    throw new VariableNotFoundError(key);
  }
  if (isSensitiveName(key)) processMasker.add(value);
  if (!options.json) return value;
  try {
    return JSON.parse(value) as T;
  } catch {
    throw new Error(`variable '${key}' is not JSON, but was read with { json: true }`);
  }
}
