import { Type } from 'typebox';
import { API_ROLES, createUser, deleteUser, listUsers, UserExistsError, UserNotFoundError } from '../../db/api-users.ts';
import { hashPassword } from '../credentials.ts';
import { principalOf } from '../plugins/auth.ts';
import { conflict, notFound } from '../problem.ts';
import { DateTimeString, iso, NoContent, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const Role = Type.Enum([...API_ROLES]);
const User = Type.Object({ username: Type.String(), role: Role, created_at: DateTimeString });

/** Users (admins only): list, create (with a password), delete. Tokens are made with `tsflow users token`. */
export function registerUserRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/users',
    {
      config: { role: 'admin' },
      schema: { tags: ['users'], summary: 'the users and their roles', querystring: Type.Object(PageQuery), response: responses({ 200: Type.Object({ users: Type.Array(User), total_entries: Type.Integer() }) }) },
    },
    async (request) => {
      const users = await listUsers(db);
      const page = users.slice(request.query.offset, request.query.offset + request.query.limit);
      return { users: page.map((u) => ({ username: u.username, role: u.role, created_at: iso(u.createdAt) })), total_entries: users.length };
    },
  );

  app.post(
    '/users',
    {
      config: { role: 'admin', audit: 'user.create' },
      schema: {
        tags: ['users'],
        summary: 'create a user',
        body: Type.Object({
          username: Type.String({ pattern: '^[A-Za-z0-9_.@-]{1,64}$' }),
          role: Role,
          password: Type.String({ minLength: 1, maxLength: 1024 }),
        }),
        response: responses({ 200: User }),
      },
    },
    async (request) => {
      const { username, role, password } = request.body;
      try {
        const user = await createUser(db, username, role, await hashPassword(password));
        request.auditDetails = { username, role };
        return { username: user.username, role: user.role, created_at: iso(user.createdAt) };
      } catch (error) {
        if (error instanceof UserExistsError) throw conflict(error.message);
        throw error;
      }
    },
  );

  app.delete(
    '/users/:username',
    { config: { role: 'admin', audit: 'user.delete' }, schema: { tags: ['users'], summary: 'delete a user with its sessions and tokens', params: Type.Object({ username: Type.String() }), response: responses({ 204: NoContent }) } },
    async (request, reply) => {
      if (request.params.username === principalOf(request).user.username) throw conflict('you cannot delete yourself: ask another admin, or use tsflow users delete');
      try {
        await deleteUser(db, request.params.username);
      } catch (error) {
        if (error instanceof UserNotFoundError) throw notFound(error.message);
        throw error;
      }
      return reply.code(204).send(null);
    },
  );
}
