import { Type } from 'typebox';
import {
  HitlAlreadyAnsweredError,
  HitlForbiddenError,
  HitlNotFoundError,
  HitlNotWaitingError,
  InvalidHitlAnswerError,
  listHitlDetails,
  respondHitl,
  type HitlDetail,
} from '../../db/hitl.ts';
import type { JsonObject } from '../../sdk/json.ts';
import { principalOf } from '../plugins/auth.ts';
import { ApiError, badRequest, conflict, notFound } from '../problem.ts';
import { DateTimeString, JsonObjectSchema, NullableDateTime, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

/*
 * Human in the loop (issue 17, Airflow 3.1's `hitlDetails`): viewers list the requests (the Required
 * actions page reads the pending ones), and a request's assignees — or an admin; any operator when it
 * names none — answer it. The same db/ functions as `tsflow hitl list|respond`; the signed-in user is
 * the responder. The route admits viewers: whether this user may answer this request is decided with
 * the request, in the answering transaction (403 when not).
 */

const HitlDetailSchema = Type.Object({
  dag_id: Type.String(),
  dag_run_id: Type.String(),
  task_id: Type.String(),
  map_index: Type.Integer({ description: '-1: unmapped' }),
  try_number: Type.Integer(),
  subject: Type.String(),
  body: Type.Union([Type.String(), Type.Null()], { description: 'Markdown' }),
  options: Type.Array(Type.String()),
  params: JsonObjectSchema,
  assignees: Type.Array(Type.String(), { description: 'usernames who may answer (admins always may); empty: any operator' }),
  defaults: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'taken at the timeout; null: a timeout fails the task' }),
  multiple: Type.Boolean(),
  created_at: DateTimeString,
  task_state: Type.Union([Type.String(), Type.Null()]),
  pending: Type.Boolean({ description: 'unanswered, and its task still waits for it' }),
  response_received: Type.Boolean(),
  chosen_options: Type.Union([Type.Array(Type.String()), Type.Null()]),
  params_input: Type.Union([JsonObjectSchema, Type.Null()]),
  responded_by: Type.Union([Type.String(), Type.Null()], { description: 'null when the defaults were taken at the timeout' }),
  responded_at: NullableDateTime,
  timed_out: Type.Boolean(),
});

function detailJson(d: HitlDetail) {
  return {
    dag_id: d.task.dagId,
    dag_run_id: d.task.runId,
    task_id: d.task.taskId,
    map_index: d.task.mapIndex ?? -1,
    try_number: d.tryNumber,
    subject: d.subject,
    body: d.body,
    options: [...d.options],
    params: d.params,
    assignees: [...d.assignees],
    defaults: d.defaults === null ? null : [...d.defaults],
    multiple: d.multiple,
    created_at: d.createdAt.toISOString(),
    task_state: d.taskState,
    pending: d.pending,
    response_received: d.answer !== null,
    chosen_options: d.answer?.chosenOptions ?? null,
    params_input: d.answer?.paramsInput ?? null,
    responded_by: d.answer?.respondedBy ?? null,
    responded_at: d.answer?.respondedAt ?? null,
    timed_out: d.answer?.timedOut ?? false,
  };
}

const TaskParams = Type.Object({ dag_id: Type.String({ minLength: 1 }), dag_run_id: Type.String({ minLength: 1 }), task_id: Type.String({ minLength: 1 }) });

export function registerHitlRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/hitlDetails',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['hitl'],
        summary: 'human-in-the-loop requests with their responses; pending=true: those awaiting an answer, oldest first',
        querystring: Type.Object({
          pending: Type.Boolean({ default: false, description: 'only unanswered requests whose task still waits' }),
          dag_id: Type.Optional(Type.String()),
          ...PageQuery,
        }),
        response: responses({ 200: Type.Object({ hitl_details: Type.Array(HitlDetailSchema), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      const q = request.query;
      const listed = await listHitlDetails(db, { pending: q.pending, dagId: q.dag_id, limit: q.limit, offset: q.offset });
      return { hitl_details: listed.details.map(detailJson), total_entries: listed.total };
    },
  );

  app.patch(
    '/hitlDetails/:dag_id/:dag_run_id/:task_id',
    {
      config: { role: 'viewer', audit: 'hitl.respond' },
      schema: {
        tags: ['hitl'],
        summary: 'answer a request (once): its task resumes with the answer; 403 for a user who is neither an assignee nor an admin, 409 when answered already',
        params: TaskParams,
        querystring: Type.Object({ map_index: Type.Integer({ minimum: -1, default: -1, description: 'the map index of a mapped task' }) }),
        body: Type.Object(
          {
            chosen_options: Type.Array(Type.String(), { minItems: 1, description: 'among the options; one unless the request is multiple' }),
            params_input: Type.Optional(JsonObjectSchema),
          },
          { additionalProperties: false },
        ),
        response: responses({ 200: HitlDetailSchema }),
      },
    },
    async (request) => {
      const { dag_id: dagId, dag_run_id: runId, task_id: taskId } = request.params;
      const mapIndex = request.query.map_index;
      const { user } = principalOf(request);
      try {
        const answered = await respondHitl(
          db,
          { dagId, runId, taskId, mapIndex },
          { chosenOptions: request.body.chosen_options, paramsInput: (request.body.params_input ?? {}) as JsonObject },
          { username: user.username, role: user.role },
        );
        // Params may hold what the person typed: the audit entry records the choice, not the params.
        request.auditDetails = { dagId, runId, taskId, mapIndex, chosenOptions: answered.answer?.chosenOptions ?? [] };
        return detailJson(answered);
      } catch (error) {
        if (error instanceof HitlNotFoundError) throw notFound(error.message.replace('tsflow hitl list', 'GET /api/v1/hitlDetails'));
        if (error instanceof HitlForbiddenError) throw new ApiError(403, 'Forbidden', error.message);
        if (error instanceof HitlAlreadyAnsweredError || error instanceof HitlNotWaitingError) throw conflict(error.message);
        if (error instanceof InvalidHitlAnswerError) throw badRequest(error.message);
        throw error;
      }
    },
  );
}
