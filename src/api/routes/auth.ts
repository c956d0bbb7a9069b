import { Type } from 'typebox';
import { createSession, deleteSession, userForLogin, type ApiUser } from '../../db/api-users.ts';
import { writeAudit } from '../../db/audit-log.ts';
import { clearLoginFailures, loginRetryAfter, recordLoginFailure } from '../../db/login-failures.ts';
import { DUMMY_PASSWORD_HASH, newSecret, sha256, verifyPassword } from '../credentials.ts';
import { isSecure, principalOf, SESSION_COOKIE } from '../plugins/auth.ts';
import { ApiError } from '../problem.ts';
import { DateTimeString, NoContent, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const Role = Type.Enum(['viewer', 'operator', 'admin']);
const UserSchema = Type.Object({ username: Type.String(), role: Role });
const LoginBody = Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }), password: Type.String({ minLength: 1, maxLength: 1024 }) });
const Session = Type.Object({
  user: UserSchema,
  csrf_token: Type.Union([Type.String(), Type.Null()], { description: 'send it in X-CSRF-Token on every state change made with the session cookie; null for a bearer token' }),
  expires_at: Type.Union([DateTimeString, Type.Null()]),
});

const userJson = (u: ApiUser) => ({ username: u.username, role: u.role });

/** Login (sets the session cookie, returns the CSRF token), logout, and who am I. */
export function registerAuthRoutes(app: ApiApp, { database, options }: RouteContext): void {
  const { db } = database;

  app.post(
    '/auth/login',
    {
      config: { public: true },
      schema: { tags: ['auth'], summary: 'sign in: sets an HttpOnly session cookie and returns the CSRF token', security: [], body: LoginBody, response: responses({ 200: Session }) },
    },
    async (request, reply) => {
      const { username, password } = request.body;
      const ip = request.ip;
      request.auditDone = true;
      const wait = await loginRetryAfter(db, username, ip, options.loginLimit);
      if (wait > 0) {
        await writeAudit(db, { username, action: 'auth.login.refused', target: null, details: { reason: 'rate limited', client_ip: ip } });
        throw new ApiError(429, 'Too Many Requests', `too many failed logins for this user or address: try again in ${wait} s`, { 'retry-after': String(wait) });
      }
      const user = await userForLogin(db, username);
      // An unknown user costs a hash too, so timing does not tell which names exist.
      const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_PASSWORD_HASH);
      if (!user || !ok) {
        await recordLoginFailure(db, username, ip, options.loginLimit.windowMs);
        await writeAudit(db, { username, action: 'auth.login.failed', target: null, details: { client_ip: ip } });
        throw new ApiError(401, 'Unauthorized', 'wrong username or password');
      }
      await clearLoginFailures(db, username);
      const sessionId = newSecret();
      const csrfToken = newSecret();
      const expiresAt = await createSession(db, user.id, sha256(sessionId), csrfToken, options.sessionTtlMs);
      reply.setCookie(SESSION_COOKIE, sessionId, {
        path: '/',
        httpOnly: true,
        sameSite: 'strict',
        secure: isSecure(request),
        expires: expiresAt,
      });
      await writeAudit(db, { username, action: 'auth.login', target: null, details: { client_ip: ip } });
      return { user: userJson(user), csrf_token: csrfToken, expires_at: expiresAt.toISOString() };
    },
  );

  app.post(
    '/auth/logout',
    { config: { role: 'viewer', audit: 'auth.logout' }, schema: { tags: ['auth'], summary: 'end the session (its cookie is cleared)', response: responses({ 204: NoContent }) } },
    async (request, reply) => {
      const principal = principalOf(request);
      if (principal.sessionHash) await deleteSession(db, principal.sessionHash);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/auth/me',
    { config: { role: 'viewer' }, schema: { tags: ['auth'], summary: 'the signed-in user, and the session\'s CSRF token', response: responses({ 200: Session }) } },
    async (request) => {
      const principal = principalOf(request);
      return { user: userJson(principal.user), csrf_token: principal.csrfToken ?? null, expires_at: null };
    },
  );
}
