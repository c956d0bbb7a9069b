import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiServer } from '../../src/api/api-server.ts';
import { hashPassword, newSecret, sha256 } from '../../src/api/credentials.ts';
import { LiveEvents } from '../../src/api/live-events.ts';
import type { ApiServerOptions } from '../../src/api/server.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { addToken, createUser } from '../../src/db/api-users.ts';
import type { Database } from '../../src/db/database.ts';
import { Notifier } from '../../src/db/notifier.ts';
import { Channels } from '../../src/db/protocol.ts';
import type { ApiRole } from '../../src/db/schema.ts';
import { DagBag } from '../../src/dag-bag/dag-bag.ts';
import { serializeDag } from '../../src/dag-bag/serialized-dag.ts';
import { recordDags } from '../../src/db/serialized-dags.ts';
import type { TestDatabase } from './database.ts';
import { FIXTURES } from './rig.ts';

export const API_DAGS = path.join(FIXTURES, 'api-dags');

/** Records the API fixture DAGs as a DAG processor would. */
export async function recordApiDags(tdb: TestDatabase): Promise<DagBag> {
  const bag = await DagBag.load(API_DAGS);
  await recordDags(tdb.database.db, [...bag.dags.values()].map((d) => serializeDag(d, d.fileloc ?? '')));
  return bag;
}

export const PASSWORD = 'correct horse battery staple';

export interface ApiRig {
  readonly url: string;
  readonly server: ApiServer;
  readonly live: LiveEvents;
  readonly logsFolder: string;
  /** A bearer token per role (users viewer, operator, admin). */
  readonly tokens: Readonly<Record<ApiRole, string>>;
  stop(): Promise<void>;
}

/** A real API server on 127.0.0.1 (a free port) over the test database, with one user and token per role. */
export async function startApi(database: Database, options: ApiServerOptions = {}, logsFolder?: string): Promise<ApiRig> {
  const hash = await hashPassword(PASSWORD);
  const tokens = {} as Record<ApiRole, string>;
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    await createUser(database.db, role, role, hash).catch(() => undefined);
    tokens[role] = newSecret('tsf_');
    await addToken(database.db, role, sha256(tokens[role]));
  }
  const live = new LiveEvents(new Notifier({ url: database.url, channels: [Channels.ti, Channels.trigger, Channels.dag], logger: silentLogger() }));
  await live.start();
  const folder = logsFolder ?? mkdtempSync(path.join(os.tmpdir(), 'tsflow-api-logs-'));
  // Not tracked per test: a suite shares one server, stopped in its after hook.
  const server = new ApiServer({ database, logger: silentLogger(), logsFolder: folder, live }, options);
  const url = await server.start('127.0.0.1', 0);
  return {
    url,
    server,
    live,
    logsFolder: folder,
    tokens,
    stop: async () => {
      await server.stop();
      await live.stop();
    },
  };
}

export interface Call {
  token?: string | undefined;
  cookie?: string | undefined;
  csrf?: string | undefined;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

/** One request; the body parsed as JSON when there is one. */
export async function call<T = Record<string, unknown>>(base: string, method: string, route: string, options: Call = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  if (options.cookie) headers['cookie'] = options.cookie;
  if (options.csrf) headers['x-csrf-token'] = options.csrf;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${route}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text === '' ? null : JSON.parse(text)) as T };
}

/** Signs in; returns the cookie header to send and the CSRF token. */
export async function login(base: string, username: string, password = PASSWORD): Promise<{ cookie: string; csrf: string }> {
  const answer = await call<{ csrf_token: string }>(base, 'POST', '/api/v1/auth/login', { body: { username, password } });
  if (answer.status !== 200) throw new Error(`login as ${username} failed: ${answer.status} ${JSON.stringify(answer.body)}`);
  const setCookie = answer.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0] as string, csrf: answer.body.csrf_token };
}
