import { Type } from 'typebox';
import { listAudit } from '../../db/audit-log.ts';
import { DateTimeString, iso, JsonObjectSchema, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const AuditEntry = Type.Object({
  id: Type.Integer(),
  when: DateTimeString,
  username: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  target: Type.Union([Type.String(), Type.Null()]),
  details: JsonObjectSchema,
});

/** The audit log (admins only): every state change made through the API or `tsflow users`, newest first. */
export function registerAuditRoutes(app: ApiApp, { database }: RouteContext): void {
  app.get(
    '/audit',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['audit'],
        summary: 'the audit log, newest first',
        querystring: Type.Object({ ...PageQuery, username: Type.Optional(Type.String()), action: Type.Optional(Type.String()) }),
        response: responses({ 200: Type.Object({ entries: Type.Array(AuditEntry), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const q = request.query;
      const { entries, total } = await listAudit(database.db, { limit: q.limit, offset: q.offset, username: q.username, action: q.action });
      return { entries: entries.map((e) => ({ id: e.id, when: iso(e.at), username: e.username, action: e.action, target: e.target, details: e.details })), total_entries: total };
    },
  );
}
