import net from 'node:net';
import { connectionTarget } from '../../../triggers/http-poll-trigger.ts';
import { redactUrl } from '../../common/redact-url.ts';
import type { Connection } from '../../secrets/connection.ts';

const TIMEOUT_MS = 10_000;

export interface ConnectionTestResult {
  ok: boolean;
  message: string;
}

/**
 * `connections test`: an http/https connection is asked for its base URL with its auth and headers
 * (any answer below 500 means it is reachable; 401 and 403 are reported as failures of the login);
 * any other type gets a TCP connect to host:port. Messages never show the password or the query.
 */
export async function testConnection(connection: Connection): Promise<ConnectionTestResult> {
  if (connection.connType === 'http' || connection.connType === 'https') return testHttp(connection);
  return testTcp(connection);
}

async function testHttp(connection: Connection): Promise<ConnectionTestResult> {
  let target;
  try {
    target = connectionTarget(connection, '', {}, 'connections test');
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
  try {
    const response = await fetch(target.url, { headers: target.headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
    await response.body?.cancel();
    const where = `GET ${redactUrl(target.url)} answered ${response.status}`;
    if (response.status === 401 || response.status === 403) return { ok: false, message: `${where}: the login or password is refused` };
    return { ok: response.status < 500, message: where };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return { ok: false, message: target.redact(`GET ${redactUrl(target.url)} failed: ${cause?.code ?? (error as Error).message}`) };
  }
}

function testTcp(connection: Connection): Promise<ConnectionTestResult> {
  const { host, port } = connection;
  if (!host || port === null) {
    return Promise.resolve({ ok: false, message: `a ${connection.connType} connection is tested by connecting to host:port, and it has ${!host ? 'no host' : 'no port'}` });
  }
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: TIMEOUT_MS });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true, message: `${host}:${port} accepts TCP connections` });
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve({ ok: false, message: `${host}:${port} did not answer within ${TIMEOUT_MS / 1000} s` });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ ok: false, message: `${host}:${port}: ${error.code ?? error.message}` }));
  });
}
