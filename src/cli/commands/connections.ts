import { connectionExists, deleteConnection, listStoredConnections, putConnection } from '../../db/connections.ts';
import type { JsonObject } from '../../sdk/json.ts';
import {
  checkConnId,
  connectionFromObject,
  connectionToObject,
  InvalidConnectionError,
  parseConnectionUri,
  type Connection,
  type ConnectionFields,
} from '../../secrets/connection.ts';
import { connectionFromEnvironment } from '../../secrets/env-secrets.ts';
import { lookupConnection } from '../../secrets/lookup.ts';
import { MASK, processMasker } from '../../secrets/masker.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { withRuntime } from '../runtime.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';
import { testConnection } from './connection-test.ts';
import { readJsonObjectFile, writeSecretFile } from './secret-files.ts';

/*
 * Airflow's `connections` verbs: add, get, list, delete, test, import, export. Passwords are never
 * printed (`***`); `export` writes them to a file (mode 0600), which is how connections move between
 * deployments.
 */

/** What `get` and `list` show: the password as `***`, the extra with secret-looking values masked. */
function shown(c: Connection): JsonObject {
  return {
    conn_id: c.connId,
    conn_type: c.connType,
    description: c.description,
    host: c.host,
    port: c.port,
    login: c.login,
    password: c.password === null ? null : MASK,
    schema: c.schema,
    extra: processMasker.maskJson(c.extra),
  };
}

function invalid(error: unknown): never {
  if (error instanceof InvalidConnectionError) throw new UsageError(error.message);
  throw error;
}

/** `tsflow connections add ID (--uri URI | --conn-type T [--host …])`. */
export const connectionsAdd = defineCommand(
  {
    name: 'connections add',
    summary: 'store connection ID, from a URI or field by field (password and extra encrypted)',
    positionals: ['ID'],
    options: {
      uri: { type: 'string', value: 'URI', description: "TYPE://LOGIN:PASSWORD@HOST:PORT/SCHEMA?extra=… (percent-encode special characters)" },
      'conn-type': { type: 'string', value: 'T', description: 'the connection type (http, https, postgres, …), without --uri' },
      host: { type: 'string', value: 'H', description: 'host, without --uri' },
      port: { type: 'string', value: 'N', description: 'port, without --uri' },
      login: { type: 'string', value: 'L', description: 'login, without --uri' },
      password: { type: 'string', value: 'P', description: 'password, without --uri' },
      schema: { type: 'string', value: 'S', description: 'schema (database, base path), without --uri' },
      extra: { type: 'string', value: 'JSON', description: 'extra as a JSON object (for http: headers), without --uri' },
      description: { type: 'string', value: 'D', description: 'what the connection is for' },
      overwrite: { type: 'boolean', description: 'replace a connection of that id (otherwise that is an error)' },
    },
    details: [
      'Airflow\'s URI form: the scheme is the type (postgresql → postgres, - → _), login and password are',
      'percent-decoded, the path is the schema, and the query becomes extra (or __extra__=JSON holds it whole).',
      'Needs a secret key: TSFLOW_SECRET_KEY, or (embedded database) $TSFLOW_HOME/secret.key.',
    ],
  },
  async ({ values, positionals }, settings) => {
    const connId = positionals[0] as string;
    let fields: ConnectionFields;
    try {
      checkConnId(connId);
      const fieldFlags = (['conn-type', 'host', 'port', 'login', 'password', 'schema', 'extra'] as const).filter((f) => values[f] !== undefined);
      if (values.uri !== undefined) {
        if (fieldFlags.length > 0) throw new UsageError(`--uri and --${fieldFlags[0]} cannot be combined: give the whole connection as a URI, or field by field`);
        fields = { ...parseConnectionUri(values.uri, '--uri'), description: values.description ?? null };
      } else {
        if (values['conn-type'] === undefined) throw new UsageError('give --uri, or --conn-type with the other fields');
        fields = connectionFromObject(
          {
            conn_type: values['conn-type'],
            host: values.host,
            port: values.port,
            login: values.login,
            password: values.password,
            schema: values.schema,
            extra: values.extra,
            description: values.description,
          },
          'the connection',
        );
      }
    } catch (error) {
      invalid(error);
    }
    return withRuntime(settings, {}, async (runtime) => {
      const { db } = runtime.database;
      if (!values.overwrite && (await connectionExists(db, connId))) {
        throw new UsageError(`connection '${connId}' already exists: delete it first, or pass --overwrite`);
      }
      await putConnection(db, connId, fields);
      console.log(`connection '${connId}' stored`);
      return 0;
    });
  },
);

/** `tsflow connections get ID [--json]`. */
export const connectionsGet = defineCommand(
  {
    name: 'connections get',
    summary: 'one connection (password shown as ***), from TSFLOW_CONN_<ID> or the database',
    positionals: ['ID'],
    options: { json: { ...JSON_OUTPUT, description: 'print { conn_id, conn_type, description, host, port, login, password, schema, extra, source }' } },
  },
  async ({ values, positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const connId = positionals[0] as string;
      const source = connectionFromEnvironment(connId) ? 'environment' : 'database';
      let connection: Connection;
      try {
        connection = await lookupConnection(runtime.database.db, connId);
      } catch (error) {
        invalid(error);
      }
      const out = { ...shown(connection), source };
      if (values.json) console.log(JSON.stringify(out));
      else for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(12)} ${v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v)}`);
      return 0;
    }),
);

/** `tsflow connections list [--json]`. */
export const connectionsList = defineCommand(
  {
    name: 'connections list',
    summary: 'the stored connections (not those defined by TSFLOW_CONN_* variables)',
    options: { json: { ...JSON_OUTPUT, description: 'print [{ conn_id, conn_type, description, host, port, login, password, schema, extra }]' } },
  },
  async ({ values }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const connections = await listStoredConnections(runtime.database.db);
      if (values.json) console.log(JSON.stringify(connections.map(shown)));
      else if (connections.length === 0) console.log('no connections');
      else {
        for (const c of connections) {
          console.log(`${c.connId}  ${c.connType}  ${c.host ?? ''}${c.port !== null ? `:${c.port}` : ''}${c.login !== null ? `  login ${c.login}` : ''}${c.schema !== null ? `  schema ${c.schema}` : ''}`);
        }
      }
      return 0;
    }),
);

/** `tsflow connections delete ID`. */
export const connectionsDelete = defineCommand(
  { name: 'connections delete', summary: 'delete stored connection ID', positionals: ['ID'], options: {} },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const connId = positionals[0] as string;
      if (!(await deleteConnection(runtime.database.db, connId))) throw new UsageError(`connection '${connId}' is not stored, so it was not deleted`);
      console.log(`connection '${connId}' deleted`);
      return 0;
    }),
);

/** `tsflow connections test ID`. */
export const connectionsTest = defineCommand(
  {
    name: 'connections test',
    summary: 'try connection ID: an HTTP request for http/https, a TCP connect for other types',
    positionals: ['ID'],
    options: {},
    details: ['http and https: GET the base URL with the connection\'s auth and headers; any answer below 500 passes.', 'Exit code 1 when the test fails.'],
  },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      let connection: Connection;
      try {
        connection = await lookupConnection(runtime.database.db, positionals[0] as string);
      } catch (error) {
        invalid(error);
      }
      const result = await testConnection(connection);
      console.log(`connection '${connection.connId}': ${result.ok ? 'ok' : 'failed'} — ${result.message}`);
      return result.ok ? 0 : 1;
    }),
);

/** `tsflow connections export FILE`. */
export const connectionsExport = defineCommand(
  {
    name: 'connections export',
    summary: 'write the stored connections, passwords included, to FILE as JSON (mode 0600)',
    positionals: ['FILE'],
    options: {},
    details: ['The shape is Airflow\'s: { ID: { conn_type, description, host, login, password, schema, port, extra } }.'],
  },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const connections = await listStoredConnections(runtime.database.db);
      const file = positionals[0] as string;
      await writeSecretFile(file, Object.fromEntries(connections.map((c) => [c.connId, connectionToObject(c)])));
      console.log(`${connections.length} connection(s) written to ${file}`);
      return 0;
    }),
);

/** `tsflow connections import FILE [--overwrite]`. */
export const connectionsImport = defineCommand(
  {
    name: 'connections import',
    summary: 'store the connections of a JSON FILE (the shape connections export writes)',
    positionals: ['FILE'],
    options: { overwrite: { type: 'boolean', description: 'replace connections that exist (otherwise they are skipped)' } },
  },
  async ({ values, positionals }, settings) => {
    const file = positionals[0] as string;
    const document = await readJsonObjectFile(file);
    const parsed: [string, ConnectionFields][] = [];
    try {
      for (const [connId, value] of Object.entries(document)) parsed.push([checkConnId(connId), connectionFromObject(value, `${file}: connection '${connId}'`)]);
    } catch (error) {
      invalid(error);
    }
    return withRuntime(settings, {}, async (runtime) => {
      const { db } = runtime.database;
      let stored = 0;
      const skipped: string[] = [];
      for (const [connId, fields] of parsed) {
        if (!values.overwrite && (await connectionExists(db, connId))) {
          skipped.push(connId);
          continue;
        }
        await putConnection(db, connId, fields);
        stored++;
      }
      console.log(`${stored} connection(s) stored${skipped.length > 0 ? `; ${skipped.length} skipped because they exist (--overwrite replaces them): ${skipped.join(', ')}` : ''}`);
      return 0;
    });
  },
);

export const CONNECTION_COMMANDS = [connectionsAdd, connectionsGet, connectionsList, connectionsDelete, connectionsTest, connectionsImport, connectionsExport];
