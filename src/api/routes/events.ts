import { Type } from 'typebox';
import { checkEventKey, InvalidEventKeyError, listEvents, sendEvent, type ListedEvent } from '../../db/events.ts';
import type { JsonValue } from '../../sdk/json.ts';
import { principalOf } from '../plugins/auth.ts';
import { badRequest } from '../problem.ts';
import { DateTimeString, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

/*
 * External events (issue 17): operators send one (it resumes every task waiting for its key), viewers
 * list recent ones with the task instances that consumed them. The same db/ functions as
 * `tsflow events send|list`; the signed-in user is the sender.
 */

const Consumer = Type.Object({ dag_id: Type.String(), dag_run_id: Type.String(), task_id: Type.String(), consumed_at: DateTimeString });

const EventSchema = Type.Object({
  event_id: Type.Integer(),
  key: Type.String(),
  payload: Type.Unknown({ description: 'the JSON payload' }),
  sender: Type.Union([Type.String(), Type.Null()]),
  created_at: DateTimeString,
  consumers: Type.Array(Consumer, { description: 'task instances that resumed from it (at most 100)' }),
});

const KeyParams = Type.Object({ key: Type.String({ minLength: 1, maxLength: 250, description: 'the event key (URL-encoded)' }) });

function eventJson(e: ListedEvent) {
  return {
    event_id: e.id,
    key: e.key,
    payload: e.payload,
    sender: e.sender,
    created_at: e.createdAt,
    consumers: e.consumers.map((c) => ({ dag_id: c.dagId, dag_run_id: c.runId, task_id: c.taskId, consumed_at: c.consumedAt })),
  };
}

function checkedKey(key: string): string {
  try {
    return checkEventKey(key);
  } catch (error) {
    if (error instanceof InvalidEventKeyError) throw badRequest(error.message);
    throw error;
  }
}

export function registerEventRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/events',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['events'],
        summary: 'recent external events, newest first, with the task instances that consumed them',
        querystring: Type.Object({ key: Type.Optional(Type.String({ maxLength: 250, description: 'only events of this key' })), ...PageQuery }),
        response: responses({ 200: Type.Object({ events: Type.Array(EventSchema), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const q = request.query;
      const listed = await listEvents(db, { key: q.key === undefined ? undefined : checkedKey(q.key), limit: q.limit, offset: q.offset });
      return { events: listed.events.map(eventJson), total_entries: listed.total };
    },
  );

  app.post(
    '/events/:key',
    {
      config: { role: 'operator', audit: 'event.send' },
      schema: {
        tags: ['events'],
        summary: 'send an external event: every task waiting for the key resumes with it (an event sent before a wait counts within its since)',
        params: KeyParams,
        body: Type.Object({ payload: Type.Optional(Type.Unknown({ description: 'any JSON value; default {}' })) }, { additionalProperties: false }),
        response: responses({ 201: Type.Object({ event_id: Type.Integer(), key: Type.String(), sender: Type.String() }) }),
      },
    },
    async (request, reply) => {
      const key = checkedKey(request.params.key);
      const sender = principalOf(request).user.username;
      const payload = (request.body.payload ?? {}) as JsonValue;
      const id = await sendEvent(db, key, payload, sender);
      // The payload may hold application data: the audit entry records only the event id.
      request.auditDetails = { eventId: id };
      reply.code(201);
      return { event_id: id, key, sender };
    },
  );
}
