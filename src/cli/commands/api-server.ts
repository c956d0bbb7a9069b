import type { ApiServer } from '../../api/api-server.ts';
import { redactUrl } from '../../db/database.ts';
import { ALL_CHANNELS, createNotifier } from '../components.ts';
import { STARTUP_TIMEOUT } from '../common-options.ts';
import type { Runtime } from '../runtime.ts';
import type { CleanupStack } from '../../common/cleanup-stack.ts';
import { startDaemon } from '../daemon-startup.ts';
import { printWarning } from '../notice.ts';
import { parsePort } from '../settings.ts';
import { defineCommand } from '../usage.ts';

export const API_HOST = { type: 'string', value: 'HOST', description: 'the address to bind (0.0.0.0: every interface)', default: '127.0.0.1' } as const;

/** Requests served at once, each holding a connection for one or two queries. */
const API_CONNECTIONS = 10;

/**
 * Starts an API server with its NOTIFY relay on an open runtime, pushing both onto `cleanup` (the
 * server first, so its streams end before the relay's connection closes). `api-server` and
 * `standalone` share it.
 */
export async function startApiServer(runtime: Runtime, cleanup: CleanupStack, host: string, port: number): Promise<ApiServer> {
  // Loaded here, not at the top: every tsflow command (and every task process) imports this file
  // through the command list, and Fastify with its plugins costs them start-up time for nothing.
  const [{ ApiServer }, { LiveEvents }] = await Promise.all([import('../../api/api-server.ts'), import('../../api/live-events.ts')]);
  const live = new LiveEvents(createNotifier(runtime, ALL_CHANNELS));
  cleanup.push('event relay', () => live.stop());
  await live.start();
  const server = new ApiServer({ database: runtime.database, logger: runtime.logger, logsFolder: runtime.settings.logsFolder, live });
  cleanup.push('API server', () => server.stop());
  try {
    await server.start(host, port);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'EADDRINUSE') throw new ApiPortInUseError(`the API server's port ${port} on ${host} is already in use: choose another port, or stop what listens there`, { cause: error });
    throw error;
  }
  return server;
}

/**
 * `standalone`'s API server: its base URL, or undefined when the default port is taken (a warning:
 * the scheduler and triggerer run on without it). A port given explicitly must be free.
 */
export async function startApiServerIn(runtime: Runtime, cleanup: CleanupStack, api: { host: string; port: number; required: boolean }): Promise<string | undefined> {
  try {
    return (await startApiServer(runtime, cleanup, api.host, api.port)).url;
  } catch (error) {
    if (api.required || !(error instanceof ApiPortInUseError)) throw error;
    printWarning(`${error.message}; standalone runs without it`);
    return undefined;
  }
}

export class ApiPortInUseError extends Error {
  override name = 'ApiPortInUseError';
}

/** `tsflow api-server [--host H] [--port P]`. */
export const apiServerCommand = defineCommand(
  {
    name: 'api-server',
    summary: 'the REST API (/api/v1) with its OpenAPI document; users and tokens come from tsflow users',
    options: {
      host: API_HOST,
      port: { type: 'string', value: 'P', description: 'the port to listen on', default: '8080' },
      'startup-timeout': STARTUP_TIMEOUT,
    },
    details: [
      'Every route but /api/v1/health needs a user (tsflow users create) or an API token (tsflow users token).',
      'Binds 127.0.0.1 unless --host says otherwise; put it behind a TLS proxy before exposing it.',
    ],
  },
  async ({ values }, settings) => {
    const host = values.host ?? '127.0.0.1';
    const port = values.port === undefined ? 8080 : parsePort(values.port, '--port');
    const started = await startDaemon({
      settings,
      startupTimeout: values['startup-timeout'],
      runtime: { applicationName: 'tsflow-api-server', poolSize: API_CONNECTIONS },
      shutdownTimeoutMs: 15_000,
      start: async (runtime, cleanup) => startApiServer(runtime, cleanup, host, port),
    });
    if (!started) return 0;
    try {
      console.log(`tsflow api-server: listening on ${started.value.url}/api/v1, web UI at ${started.value.url}/ui/ (database ${redactUrl(started.runtime.database.url)})`);
      const signal = await started.received;
      started.runtime.logger.info({ signal }, 'shutting down');
      return 0;
    } finally {
      await started.close();
    }
  },
);
