import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  LogController, type FastifyBaseLogger, type FastifyInstance, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import type { Database } from '../db/database.ts';
import type { LoginLimit } from '../db/login-failures.ts';
import { installAuth } from './plugins/auth.ts';
import { errorHandler, sendProblem } from './problem.ts';
import { Problem } from './schemas.ts';
import type { LiveEvents } from './live-events.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerAuthRoutes } from './routes/auth.ts';
import { registerDagRoutes } from './routes/dags.ts';
import { registerDagRunRoutes } from './routes/dag-runs.ts';
import { registerEventRoutes } from './routes/events.ts';
import { registerHitlRoutes } from './routes/hitl.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerImportErrorRoutes } from './routes/import-errors.ts';
import { registerJobRoutes } from './routes/jobs.ts';
import { registerLogRoutes } from './routes/logs.ts';
import { registerPoolRoutes } from './routes/pools.ts';
import { registerStreamRoutes } from './routes/stream.ts';
import { registerTaskInstanceRoutes } from './routes/task-instances.ts';
import { registerTriggerRoutes } from './routes/triggers.ts';
import { registerUi } from './ui.ts';
import { registerUserRoutes } from './routes/users.ts';
import { registerXcomRoutes } from './routes/xcoms.ts';

export type ApiApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface ApiServerOptions {
  /** How long a browser session lasts. @default 12 h */
  sessionTtlMs?: number;
  /** Failed logins allowed per username and per client address. @default 5 per 5 minutes */
  loginLimit?: LoginLimit;
  /** A running job whose heartbeat is older than this is unhealthy (Airflow's health-check thresholds). @default 30 s */
  healthThresholdMs?: number;
  /** How often a followed log is read for new lines while its try runs. @default 500 ms */
  logPollMs?: number;
  /** Trust X-Forwarded-* (behind a reverse proxy). @default false */
  trustProxy?: boolean;
}

export interface CompiledApiServerOptions {
  readonly sessionTtlMs: number;
  readonly loginLimit: LoginLimit;
  readonly healthThresholdMs: number;
  readonly logPollMs: number;
  readonly trustProxy: boolean;
}

export interface ApiServerDeps {
  readonly database: Database;
  readonly logger: Logger;
  /** Where task logs are ($TSFLOW_LOGS_FOLDER). */
  readonly logsFolder: string;
  /** The NOTIFY relay the SSE stream reads; without one, `/stream` sends only keep-alives. */
  readonly live?: LiveEvents | undefined;
}

/** Everything a route needs, handed to each `register*Routes`. */
export interface RouteContext extends ApiServerDeps {
  readonly options: CompiledApiServerOptions;
}

export function compileApiServerOptions(options: ApiServerOptions = {}): CompiledApiServerOptions {
  return {
    sessionTtlMs: options.sessionTtlMs ?? 12 * 3600_000,
    loginLimit: options.loginLimit ?? { maxFailures: 5, windowMs: 300_000 },
    healthThresholdMs: options.healthThresholdMs ?? 30_000,
    logPollMs: options.logPollMs ?? 500,
    trustProxy: options.trustProxy ?? false,
  };
}

/**
 * The API server as a Fastify app (not listening yet): routes under /api/v1 with TypeBox request and
 * response schemas, from which `/api/v1/openapi.json` is generated.
 */
export async function buildApiServer(deps: ApiServerDeps, options: ApiServerOptions = {}): Promise<ApiApp> {
  const compiled = compileApiServerOptions(options);
  const logger = deps.logger.child({ component: 'api-server' });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No request lines: a URL may carry a query string an operator would not want logged.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: compiled.trustProxy,
    // Hijacked SSE and log streams are ended in preClose; idle keep-alive sockets are closed at once.
    forceCloseConnections: 'idle',
    bodyLimit: 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler(errorHandler(logger));
  app.setNotFoundHandler((request, reply) => sendProblem(reply, 404, 'Not Found', `no route ${request.method} ${request.url.split('?')[0]}: GET /api/v1/openapi.json lists the routes`));

  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'tsflow API', version: '1', description: 'The REST API of tsflow (a TypeScript workflow engine in the spirit of Apache Airflow).' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'an API token (tsflow users token USER)' },
          session: { type: 'apiKey', in: 'cookie', name: 'tsflow_session', description: 'the browser session (POST /api/v1/auth/login); state changes need X-CSRF-Token' },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  app.addSchema(Problem);
  installAuth(app, deps.database.db);

  const context: RouteContext = { ...deps, options: compiled };
  await app.register(
    async (api) => {
      const typed = api as unknown as ApiApp;
      registerHealthRoutes(typed, context);
      registerAuthRoutes(typed, context);
      registerDagRoutes(typed, context);
      registerDagRunRoutes(typed, context);
      registerTaskInstanceRoutes(typed, context);
      registerLogRoutes(typed, context);
      registerXcomRoutes(typed, context);
      registerPoolRoutes(typed, context);
      registerJobRoutes(typed, context);
      registerImportErrorRoutes(typed, context);
      registerAuditRoutes(typed, context);
      registerUserRoutes(typed, context);
      registerTriggerRoutes(typed, context);
      registerEventRoutes(typed, context);
      registerHitlRoutes(typed, context);
      registerStreamRoutes(typed, context);
      typed.get('/openapi.json', { config: { role: 'viewer' }, schema: { hide: true } }, async () => app.swagger());
    },
    { prefix: '/api/v1' },
  );
  await registerUi(app);
  return app;
}
