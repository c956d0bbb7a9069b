import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../../db/database.ts';
import { roleAllows, userForSession, userForToken, type ApiUser } from '../../db/api-users.ts';
import { writeAudit } from '../../db/audit-log.ts';
import type { JsonObject } from '../../sdk/json.ts';
import type { ApiRole } from '../../db/schema.ts';
import { safeEqual, sha256 } from '../credentials.ts';
import { ApiError } from '../problem.ts';

/*
 * Authentication and authorisation, in front of every route. A route declares what it needs in its
 * config: `role` (the least role allowed), or `public: true` — and the only public routes are the
 * ones in PUBLIC_ROUTES, checked when routes are registered, so a route can neither forget its
 * role nor become public by accident. Credentials: `Authorization: Bearer <token>` (scripts), or
 * the session cookie (the browser), which must send its CSRF token in `X-CSRF-Token` on every
 * request that is not GET/HEAD/OPTIONS. Each successful state change is written to the audit log.
 */

export const SESSION_COOKIE = 'tsflow_session';
export const CSRF_HEADER = 'x-csrf-token';

/** The routes anyone may call. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/api/v1/health', '/api/v1/auth/login', '/', '/ui/*']);

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface Principal {
  readonly user: ApiUser;
  readonly via: 'token' | 'session';
  /** The session's CSRF token (sessions only). */
  readonly csrfToken?: string;
  /** SHA-256 of the session id (sessions only), to end it at logout. */
  readonly sessionHash?: string;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role that may call the route. */
    role?: ApiRole;
    /** Anyone may call it (must be listed in PUBLIC_ROUTES). */
    public?: boolean;
    /** The audit log's action name for a state change (`dag.pause`); a state change without one is logged by method and route. */
    audit?: string;
  }
  interface FastifyRequest {
    principal: Principal | null;
    /** What the handler wants recorded with its audit entry (never a secret). */
    auditDetails: JsonObject | null;
    /** Set by the login route, which audits itself. */
    auditDone: boolean;
  }
}

export function installAuth(app: FastifyInstance, db: Db): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('auditDetails', null);
  app.decorateRequest('auditDone', false);

  app.addHook('onRoute', (route) => {
    const config = route.config as { role?: ApiRole; public?: boolean } | undefined;
    if (config?.public === true) {
      if (!PUBLIC_ROUTES.has(route.url)) throw new Error(`route ${route.url} is marked public but is not in PUBLIC_ROUTES`);
      return;
    }
    if (config?.role === undefined) throw new Error(`route ${String(route.method)} ${route.url} declares no role: give it config.role (or list it in PUBLIC_ROUTES)`);
  });

  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (config.public === true || request.routeOptions.url === undefined) return;
    const principal = await authenticate(db, request);
    if (!principal) throw new ApiError(401, 'Unauthorized', 'sign in (POST /api/v1/auth/login) or send Authorization: Bearer <token> (tsflow users token USER makes one)', { 'www-authenticate': 'Bearer' });
    request.principal = principal;
    const needed = config.role ?? 'admin';
    if (!roleAllows(principal.user.role, needed)) {
      throw new ApiError(403, 'Forbidden', `user '${principal.user.username}' has the role ${principal.user.role}; this needs ${needed} or above`);
    }
    if (principal.via === 'session' && !SAFE_METHODS.has(request.method)) {
      const sent = request.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !safeEqual(sent, principal.csrfToken ?? '')) {
        throw new ApiError(403, 'Forbidden', `missing or wrong CSRF token: send the token the login returned (GET /api/v1/auth/me gives it again) in the X-CSRF-Token header`);
      }
    }
  });

  // Written before the response leaves, so a client that saw the change can read it in the log.
  app.addHook('onSend', async (request, reply, payload) => {
    if (SAFE_METHODS.has(request.method) || reply.statusCode >= 400 || request.auditDone || request.routeOptions.url === undefined) return payload;
    await writeAudit(db, {
      username: request.principal?.user.username ?? null,
      action: request.routeOptions.config.audit ?? `${request.method} ${request.routeOptions.url}`,
      target: auditTarget(request),
      details: request.auditDetails ?? {},
    });
    return payload;
  });
}

async function authenticate(db: Db, request: FastifyRequest): Promise<Principal | undefined> {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) return undefined;
    const user = await userForToken(db, sha256(match[1] as string));
    return user ? { user, via: 'token' } : undefined;
  }
  const sessionId = request.cookies[SESSION_COOKIE];
  if (!sessionId) return undefined;
  const sessionHash = sha256(sessionId);
  const found = await userForSession(db, sessionHash);
  return found ? { user: found.user, via: 'session', csrfToken: found.csrfToken, sessionHash } : undefined;
}

/** The path parameters that name what was changed: `dag_id=x dag_run_id=y`. */
function auditTarget(request: FastifyRequest): string | null {
  const params = request.params as Record<string, string> | undefined;
  if (!params || Object.keys(params).length === 0) return null;
  return Object.entries(params).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** The principal of an authenticated route (the hook guarantees one). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new ApiError(401, 'Unauthorized', 'not signed in');
  return request.principal;
}

export function isSecure(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

export type { FastifyReply };
