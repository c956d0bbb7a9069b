import { Type } from 'typebox';
import { cancelWait, extendWait, fireWait, InvalidWaitOperationError, WaitNotFoundError, WaitNotPendingError, type WaitExtension, type WaitingTask } from '../../db/wait-operations.ts';
import { DEFAULT_WAITS_LIMIT, InvalidWaitQueryError, listWaits, MAX_LATENESS_LIMIT, MAX_WAITS_LIMIT, waitLateness, type Wait, type WaitOrder } from '../../db/waits.ts';
import type { WaitTarget } from '../../triggerer/describe-wait.ts';
import { principalOf } from '../plugins/auth.ts';
import { ApiError, badRequest, notFound } from '../problem.ts';
import { DateTimeString, iso, isoOrNull, NullableDateTime, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

/*
 * Pending waits (issue 14): a deferred task instance and the trigger it waits on. Read by the Waits
 * page and scripts (keyset pages, filters as query parameters), operated by operators: fire now,
 * cancel (the try fails with "cancelled by USER", retries apply), extend the timeout. The same
 * db/ functions as `tsflow triggers waits|fire|cancel|extend`; the signed-in user is the actor.
 */

const WaitsFor = Type.Object(
  {
    kind: Type.Enum(['time', 'file', 'http', 'other']),
    due_at: Type.Optional(DateTimeString),
    path: Type.Optional(Type.String()),
    method: Type.Optional(Type.String()),
    url: Type.Optional(Type.String({ description: 'without credentials, query string or fragment' })),
  },
  { description: 'what the wait waits for: a due time (time), a path or glob (file), a URL (http); other: a trigger class not described' },
);

const PendingWait = Type.Object({
  trigger_id: Type.Integer(),
  classpath: Type.String(),
  waits_for: WaitsFor,
  dag_id: Type.String(),
  dag_run_id: Type.String(),
  task_id: Type.String(),
  map_index: Type.Integer({ description: '-1: unmapped' }),
  try_number: Type.Integer(),
  max_tries: Type.Integer(),
  triggerer_id: Type.Union([Type.Integer(), Type.Null()], { description: 'the triggerer job running it; null: not claimed yet' }),
  triggerer_hostname: Type.Union([Type.String(), Type.Null()]),
  created_date: DateTimeString,
  age_seconds: Type.Number(),
  trigger_timeout: NullableDateTime,
  time_left_seconds: Type.Union([Type.Number(), Type.Null()], { description: 'until the timeout; null: no timeout' }),
});

const TaskRef = Type.Object({ dag_id: Type.String(), dag_run_id: Type.String(), task_id: Type.String(), try_number: Type.Integer() });
const TriggerParams = Type.Object({ trigger_id: Type.Integer({ minimum: 1 }) });

const ORDERS = ['timeout', '-timeout', 'created', '-created'] as const;

function waitsForJson(target: WaitTarget) {
  switch (target.kind) {
    case 'time':
      return { kind: target.kind, due_at: target.dueAt };
    case 'file':
      return { kind: target.kind, path: target.path };
    case 'http':
      return { kind: target.kind, method: target.method, url: target.url };
    case 'other':
      return { kind: target.kind };
  }
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

function waitJson(w: Wait) {
  return {
    trigger_id: w.triggerId,
    classpath: w.classpath,
    waits_for: waitsForJson(w.waitsFor),
    dag_id: w.dagId,
    dag_run_id: w.runId,
    task_id: w.taskId,
    map_index: w.mapIndex,
    try_number: w.tryNumber,
    max_tries: w.maxTries,
    triggerer_id: w.triggererId,
    triggerer_hostname: w.triggererHostname,
    created_date: iso(w.createdAt),
    age_seconds: round1(w.ageSeconds),
    trigger_timeout: isoOrNull(w.triggerTimeout),
    time_left_seconds: w.timeLeftSeconds === null ? null : round1(w.timeLeftSeconds),
  };
}

const taskJson = (t: WaitingTask) => ({ dag_id: t.dagId, dag_run_id: t.runId, task_id: t.taskId, try_number: t.tryNumber });

/** The db/ errors of waits as problem details: unknown 404, no longer pending 409, a bad value 400. */
async function translate<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof WaitNotFoundError) throw notFound(error.message.replace('tsflow triggers list', 'GET /api/v1/triggers'));
    if (error instanceof WaitNotPendingError) throw new ApiError(409, 'Conflict', error.message);
    if (error instanceof InvalidWaitOperationError || error instanceof InvalidWaitQueryError) throw badRequest(error.message);
    throw error;
  }
}

export function registerTriggerRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/triggers',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['triggers'],
        summary: 'pending waits, a keyset page at a time (next_cursor), filtered; soonest timeout first by default',
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: MAX_WAITS_LIMIT, default: DEFAULT_WAITS_LIMIT, description: `page size (at most ${MAX_WAITS_LIMIT})` }),
          cursor: Type.Optional(Type.String({ maxLength: 400, description: 'next_cursor of the previous page (same order_by)' })),
          order_by: Type.Enum([...ORDERS], { default: 'timeout', description: 'timeout: soonest timeout first (none last); created: oldest first; - prefix: reversed' }),
          dag_id: Type.Optional(Type.String()),
          dag_run_id: Type.Optional(Type.String()),
          task_id: Type.Optional(Type.String()),
          classpath: Type.Optional(Type.String({ description: 'the trigger class, exactly (tsflow.triggers.DateTimeTrigger)' })),
          triggerer_id: Type.Optional(Type.String({ pattern: '^([0-9]+|unassigned)$', description: "a triggerer job id, or 'unassigned'" })),
          search: Type.Optional(Type.String({ maxLength: 200, description: 'DAG, run or task id containing this (case-insensitive)' })),
          with_total: Type.Boolean({ default: true, description: 'count every matching wait (total_entries)' }),
        }),
        response: responses({
          200: Type.Object({
            triggers: Type.Array(PendingWait),
            next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as cursor for the next page; null on the last' }),
            total_entries: Type.Union([Type.Integer(), Type.Null()], { description: 'null with with_total=false or a search (which no index serves)' }),
            total_exact: Type.Boolean({ description: 'false: total_entries is the planner\'s estimate (beyond 10,000)' }),
            now: DateTimeString,
          }),
        }),
      },
    },
    async (request) => {
      const q = request.query;
      const desc = q.order_by.startsWith('-');
      const page = await translate(() =>
        listWaits(db, {
          dagId: q.dag_id,
          runId: q.dag_run_id,
          taskId: q.task_id,
          classpath: q.classpath,
          triggererId: q.triggerer_id === undefined ? undefined : q.triggerer_id === 'unassigned' ? 'unassigned' : Number(q.triggerer_id),
          search: q.search,
          order: (desc ? q.order_by.slice(1) : q.order_by) as WaitOrder,
          direction: desc ? 'desc' : 'asc',
          limit: q.limit,
          cursor: q.cursor,
          withTotal: q.with_total,
        }),
      );
      return { triggers: page.waits.map(waitJson), next_cursor: page.nextCursor, total_entries: page.total, total_exact: page.totalExact, now: iso(page.now) };
    },
  );

  app.get(
    '/triggers/lateness',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['triggers'],
        summary: 'how late recent time triggers fired against their due moment (ms), most recent first, with p50/p99/max',
        querystring: Type.Object({
          since: Type.Optional(DateTimeString),
          limit: Type.Integer({ minimum: 1, maximum: MAX_LATENESS_LIMIT, default: 1000 }),
        }),
        response: responses({
          200: Type.Object({
            points: Type.Array(Type.Object({ dag_id: Type.String(), dag_run_id: Type.String(), task_id: Type.String(), fired_at: DateTimeString, lateness_ms: Type.Number() })),
            p50_ms: Type.Union([Type.Number(), Type.Null()]),
            p99_ms: Type.Union([Type.Number(), Type.Null()]),
            max_ms: Type.Union([Type.Number(), Type.Null()]),
          }),
        }),
      },
    },
    async (request) => {
      const q = request.query;
      const report = await translate(() => waitLateness(db, { since: q.since === undefined ? undefined : new Date(q.since), limit: q.limit }));
      return {
        points: report.points.map((p) => ({ dag_id: p.dagId, dag_run_id: p.runId, task_id: p.taskId, fired_at: iso(p.firedAt), lateness_ms: p.latenessMs })),
        p50_ms: report.p50Ms,
        p99_ms: report.p99Ms,
        max_ms: report.maxMs,
      };
    },
  );

  app.post(
    '/triggers/:trigger_id/fire',
    {
      config: { role: 'operator', audit: 'trigger.fire' },
      schema: {
        tags: ['triggers'],
        summary: 'fire a pending wait now: its task resumes with the event { firedBy, firedAt } (a time trigger\'s also carries its moment)',
        params: TriggerParams,
        response: responses({ 200: Type.Object({ trigger_id: Type.Integer(), actor: Type.String(), fired_at: DateTimeString, resumed: Type.Array(TaskRef) }) }),
      },
    },
    async (request) => {
      const fired = await translate(() => fireWait(db, request.params.trigger_id, principalOf(request).user.username));
      request.auditDetails = { resumed: fired.resumed.map((t) => `${t.dagId}.${t.taskId}@${t.runId}`) };
      return { trigger_id: fired.triggerId, actor: fired.actor, fired_at: iso(fired.firedAt), resumed: fired.resumed.map(taskJson) };
    },
  );

  app.post(
    '/triggers/:trigger_id/cancel',
    {
      config: { role: 'operator', audit: 'trigger.cancel' },
      schema: {
        tags: ['triggers'],
        summary: 'cancel a pending wait: its task\'s try fails with "cancelled by USER" (retries apply)',
        params: TriggerParams,
        response: responses({ 200: Type.Object({ trigger_id: Type.Integer(), actor: Type.String(), error: Type.String(), failed: Type.Array(TaskRef) }) }),
      },
    },
    async (request) => {
      const cancelled = await translate(() => cancelWait(db, request.params.trigger_id, principalOf(request).user.username));
      request.auditDetails = { failed: cancelled.failed.map((t) => `${t.dagId}.${t.taskId}@${t.runId}`) };
      return { trigger_id: cancelled.triggerId, actor: cancelled.actor, error: cancelled.error, failed: cancelled.failed.map(taskJson) };
    },
  );

  app.post(
    '/triggers/:trigger_id/extend',
    {
      config: { role: 'operator', audit: 'trigger.extend' },
      schema: {
        tags: ['triggers'],
        summary: "move a pending wait's timeout: by_seconds later, or until a moment (which also sets one on a wait without)",
        params: TriggerParams,
        body: Type.Object({
          by_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 366 * 86_400 })),
          until: Type.Optional(DateTimeString),
        }),
        response: responses({
          200: Type.Object({
            trigger_id: Type.Integer(),
            actor: Type.String(),
            trigger_timeout: DateTimeString,
            task_instances: Type.Array(Type.Intersect([TaskRef, Type.Object({ previous_timeout: NullableDateTime })])),
          }),
        }),
      },
    },
    async (request) => {
      const { by_seconds: bySeconds, until } = request.body;
      if ((bySeconds === undefined) === (until === undefined)) throw badRequest('body: give exactly one of by_seconds (a whole number of seconds) or until (an ISO 8601 moment)');
      const extension: WaitExtension = until !== undefined ? { until: new Date(until) } : { by: { seconds: bySeconds as number } };
      const extended = await translate(() => extendWait(db, request.params.trigger_id, principalOf(request).user.username, extension));
      request.auditDetails = { trigger_timeout: iso(extended.triggerTimeout), by_seconds: bySeconds ?? null };
      return {
        trigger_id: extended.triggerId,
        actor: extended.actor,
        trigger_timeout: iso(extended.triggerTimeout),
        task_instances: extended.tasks.map((t) => ({ ...taskJson(t), previous_timeout: isoOrNull(t.triggerTimeout) })),
      };
    },
  );
}
