import { sql } from 'kysely';
import { checkAnswer, InvalidHitlAnswerError, type HitlAnswer, type HitlRequest } from '../sdk/hitl.ts';
import type { JsonObject } from '../sdk/json.ts';
import type { Db } from './database.ts';
import { sendEvent } from './events.ts';
import { mapIndexOf, rowKey, tiKeyString, type ApiRole, type TaskInstanceKey } from './schema.ts';

/*
 * The `hitl_detail` table (migration 0014): human-in-the-loop requests and their one answer. The
 * operator writes the request when its try starts; a person answers through `tsflow hitl respond`,
 * the API or the Required actions page — all through `respondHitl`, which validates, stores the
 * answer and sends the wake-up event in ONE transaction, so the waiting trigger hears of an answer
 * if and only if it was stored. Raw SQL: the table is not in the kysely schema type.
 */

export class HitlNotFoundError extends Error {
  override name = 'HitlNotFoundError';
}
/** The request was answered already (by a person, or by its defaults at the timeout): one answer only. */
export class HitlAlreadyAnsweredError extends Error {
  override name = 'HitlAlreadyAnsweredError';
}
/** The request's task instance no longer waits for it (it failed, was cleared, or a later try replaced it). */
export class HitlNotWaitingError extends Error {
  override name = 'HitlNotWaitingError';
}
/** The responder is neither an assignee nor an admin. */
export class HitlForbiddenError extends Error {
  override name = 'HitlForbiddenError';
}

export { InvalidHitlAnswerError };

/** States in which a task instance still waits for its request's answer (running: about to defer; scheduled/queued: resuming). */
const WAITING_STATES = ['running', 'deferred', 'scheduled', 'queued'];

/**
 * The key of the event that wakes the request's trigger: `hitl:<dag>/<run>/<task>[i]`, or
 * `hitl:#<id>` when that would pass the 250 characters an event key may have.
 */
export function hitlEventKey(key: TaskInstanceKey, id: number): string {
  const text = `hitl:${tiKeyString(key)}`;
  return text.length <= 250 ? text : `hitl:#${id}`;
}

interface HitlRow {
  id: number;
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: number;
  try_number: number;
  subject: string;
  body: string | null;
  options: string[];
  params: JsonObject;
  assignees: string[];
  defaults: string[] | null;
  multiple: boolean;
  created_at: Date;
  chosen_options: string[] | null;
  params_input: JsonObject | null;
  responded_by: string | null;
  responded_at: Date | null;
  timed_out: boolean;
  task_state: string | null;
  task_try_number: number | null;
}

/** A request with its task instance and its answer (null while unanswered). */
export interface HitlDetail extends HitlRequest {
  readonly id: number;
  readonly task: TaskInstanceKey;
  readonly tryNumber: number;
  readonly createdAt: Date;
  readonly answer: HitlAnswer | null;
  /** The task instance's state now; null when it has none. */
  readonly taskState: string | null;
  /** Unanswered, and its task instance (this try) still waits for it. */
  readonly pending: boolean;
}

const SELECT = sql`
  SELECT h.*, ti.state AS task_state, ti.try_number AS task_try_number
  FROM hitl_detail h
  LEFT JOIN task_instance ti USING (dag_id, run_id, task_id, map_index)`;

function answerOf(row: HitlRow): HitlAnswer | null {
  if (row.responded_at === null || row.chosen_options === null) return null;
  return {
    chosenOptions: row.chosen_options,
    paramsInput: row.params_input ?? {},
    respondedBy: row.responded_by,
    respondedAt: row.responded_at.toISOString(),
    timedOut: row.timed_out,
  };
}

function waiting(row: HitlRow): boolean {
  return row.task_state !== null && WAITING_STATES.includes(row.task_state) && row.task_try_number === row.try_number;
}

function toDetail(row: HitlRow): HitlDetail {
  const answer = answerOf(row);
  return {
    id: Number(row.id),
    task: rowKey(row),
    tryNumber: row.try_number,
    subject: row.subject,
    body: row.body,
    options: row.options,
    params: row.params,
    assignees: row.assignees,
    defaults: row.defaults,
    multiple: row.multiple,
    createdAt: row.created_at,
    answer,
    taskState: row.task_state,
    pending: answer === null && waiting(row),
  };
}

const byKey = (key: TaskInstanceKey) => sql`h.dag_id = ${key.dagId} AND h.run_id = ${key.runId} AND h.task_id = ${key.taskId} AND h.map_index = ${mapIndexOf(key)}`;

/**
 * Stores the request of a try, replacing an earlier try's request and its answer (Airflow upserts
 * too: a retried HITL task asks again). Returns its id, event key and creation time (database clock).
 */
export async function upsertHitlRequest(db: Db, key: TaskInstanceKey, tryNumber: number, request: HitlRequest): Promise<{ id: number; eventKey: string; createdAt: Date }> {
  const { rows } = await sql<{ id: number; created_at: Date }>`
    INSERT INTO hitl_detail (dag_id, run_id, task_id, map_index, try_number, subject, body, options, params, assignees, defaults, multiple)
    VALUES (${key.dagId}, ${key.runId}, ${key.taskId}, ${mapIndexOf(key)}, ${tryNumber}, ${request.subject}, ${request.body},
            ${JSON.stringify(request.options)}::jsonb, ${JSON.stringify(request.params)}::jsonb, ${JSON.stringify(request.assignees)}::jsonb,
            ${request.defaults === null ? null : JSON.stringify(request.defaults)}::jsonb, ${request.multiple})
    ON CONFLICT (dag_id, run_id, task_id, map_index) DO UPDATE SET
      try_number = excluded.try_number, subject = excluded.subject, body = excluded.body, options = excluded.options,
      params = excluded.params, assignees = excluded.assignees, defaults = excluded.defaults, multiple = excluded.multiple,
      created_at = clock_timestamp(), chosen_options = NULL, params_input = NULL, responded_by = NULL, responded_at = NULL, timed_out = false
    RETURNING id, created_at`.execute(db);
  const row = rows[0] as { id: number; created_at: Date };
  const id = Number(row.id);
  return { id, eventKey: hitlEventKey(key, id), createdAt: row.created_at };
}

export async function getHitlDetail(db: Db, key: TaskInstanceKey): Promise<HitlDetail | undefined> {
  const { rows } = await sql<HitlRow>`${SELECT} WHERE ${byKey(key)}`.execute(db);
  return rows[0] === undefined ? undefined : toDetail(rows[0]);
}

/**
 * At the timeout: stores the request's defaults as its answer (`timed_out`, no responder) unless a
 * person answered first, in one statement; returns the answer that stands, or undefined when there
 * is neither an answer nor defaults.
 */
export async function takeHitlDefaults(db: Db, key: TaskInstanceKey): Promise<HitlAnswer | undefined> {
  await sql`
    UPDATE hitl_detail h SET chosen_options = h.defaults, params_input = h.params, responded_at = clock_timestamp(), timed_out = true
    WHERE ${byKey(key)} AND h.responded_at IS NULL AND h.defaults IS NOT NULL`.execute(db);
  return (await getHitlDetail(db, key))?.answer ?? undefined;
}

/** Who answers: an API user with their role; the CLI without `--as` acts as an admin. */
export interface HitlResponder {
  readonly username: string;
  readonly role: ApiRole;
}

export interface HitlResponse {
  chosenOptions: readonly string[];
  paramsInput?: JsonObject;
}

/**
 * Answers a pending request, in one transaction: locks its row, checks the responder (an assignee or
 * an admin; a request without assignees takes any operator), the task instance still waiting, no
 * answer yet, and the answer itself; stores it and sends the wake-up event (delivered at commit).
 */
export async function respondHitl(db: Db, key: TaskInstanceKey, response: HitlResponse, responder: HitlResponder): Promise<HitlDetail> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<HitlRow>`${SELECT} WHERE ${byKey(key)} FOR UPDATE OF h`.execute(trx);
    const row = rows[0];
    const what = `the HITL request of ${tiKeyString(key)}`;
    if (row === undefined) throw new HitlNotFoundError(`there is no HITL request for ${tiKeyString(key)}: tsflow hitl list shows the requests`);
    const detail = toDetail(row);
    if (detail.answer !== null) {
      const by = detail.answer.timedOut ? 'its defaults at the timeout' : `'${detail.answer.respondedBy ?? '?'}'`;
      throw new HitlAlreadyAnsweredError(`${what} was answered already, by ${by} at ${detail.answer.respondedAt} (${detail.answer.chosenOptions.join(', ')}); nothing changed`);
    }
    const allowed = responder.role === 'admin' || (detail.assignees.length === 0 ? responder.role !== 'viewer' : detail.assignees.includes(responder.username));
    if (!allowed) {
      const who = detail.assignees.length === 0 ? 'an operator or admin' : `an assignee (${detail.assignees.join(', ')}) or an admin`;
      throw new HitlForbiddenError(`user '${responder.username}' may not answer ${what}: only ${who} may; nothing changed`);
    }
    if (!waiting(row)) {
      throw new HitlNotWaitingError(`${what} (try ${row.try_number}) is no longer awaited: the task instance is ${row.task_state ?? 'gone'}${row.task_try_number !== null && row.task_try_number !== row.try_number ? ` in try ${row.task_try_number}` : ''}; nothing changed`);
    }
    const checked = checkAnswer(detail, response.chosenOptions, response.paramsInput ?? {});
    const { rows: updated } = await sql<HitlRow>`
      UPDATE hitl_detail h SET chosen_options = ${JSON.stringify(checked.chosenOptions)}::jsonb, params_input = ${JSON.stringify(checked.paramsInput)}::jsonb,
        responded_by = ${responder.username}, responded_at = clock_timestamp()
      WHERE ${byKey(key)} RETURNING h.*, ${row.task_state}::text AS task_state, ${row.task_try_number}::int AS task_try_number`.execute(trx);
    const answered = toDetail(updated[0] as HitlRow);
    await sendEvent(trx, hitlEventKey(key, detail.id), answered.answer, responder.username);
    return answered;
  });
}

export interface HitlQuery {
  /** Only the unanswered requests whose task instance still waits. */
  pending?: boolean;
  dagId?: string | undefined;
  limit: number;
  offset: number;
}

/** Requests, oldest first when pending (the queue to work through), newest first otherwise; `total` counts the matches. */
export async function listHitlDetails(db: Db, query: HitlQuery): Promise<{ details: HitlDetail[]; total: number }> {
  const dagId = query.dagId ?? null;
  const pending = query.pending === true;
  const where = sql`
    WHERE (${dagId}::text IS NULL OR h.dag_id = ${dagId})
      AND (NOT ${pending} OR (h.responded_at IS NULL AND ti.state = ANY(${WAITING_STATES}::text[]) AND ti.try_number = h.try_number))`;
  const [{ rows }, count] = await Promise.all([
    sql<HitlRow>`${SELECT} ${where} ORDER BY ${pending ? sql`h.created_at, h.id` : sql`h.created_at DESC, h.id DESC`} LIMIT ${query.limit} OFFSET ${query.offset}`.execute(db),
    sql<{ n: number }>`SELECT count(*)::int AS n FROM hitl_detail h LEFT JOIN task_instance ti USING (dag_id, run_id, task_id, map_index) ${where}`.execute(db),
  ]);
  return { details: rows.map(toDetail), total: count.rows[0]?.n ?? 0 };
}
