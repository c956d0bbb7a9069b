import { sql } from 'kysely';
import { failedJsonCondition, type JsonFieldCondition } from '../sdk/http-expectation.ts';
import type { JsonValue } from '../sdk/json.ts';
import type { ExternalEvent } from '../sdk/trigger.ts';
import type { Db } from './database.ts';
import { mapIndexOf, type TaskInstanceKey } from './schema.ts';

/*
 * The `event` table (migration 0013): external events, sent through `tsflow_send_event` so that a
 * send from the CLI or the API goes the same way as one from an application's own transaction (one
 * insert, one NOTIFY at commit). Raw SQL: the table is not in the kysely schema type.
 */

export class InvalidEventKeyError extends Error {
  override name = 'InvalidEventKeyError';
}

/** 1-250 characters, no control characters: what a key may be (the SQL function checks the length too). */
export function checkEventKey(key: string): string {
  // eslint-disable-next-line no-control-regex
  if (typeof key !== 'string' || key.length === 0 || key.length > 250 || /[\u0000-\u001f\u007f]/.test(key)) {
    throw new InvalidEventKeyError(`event key '${String(key).slice(0, 80)}' is not valid: use 1 to 250 printable characters`);
  }
  return key;
}

interface EventRow {
  id: number;
  key: string;
  payload: JsonValue;
  sender: string | null;
  created_at: Date;
}

function toEvent(row: EventRow): ExternalEvent {
  return { id: row.id, key: row.key, payload: row.payload, sender: row.sender, createdAt: row.created_at.toISOString() };
}

/** Sends an event in `db`'s transaction (or on its own); returns its id. */
export async function sendEvent(db: Db, key: string, payload: JsonValue, sender: string | null): Promise<number> {
  checkEventKey(key);
  const { rows } = await sql<{ id: number }>`SELECT tsflow_send_event(${key}, ${JSON.stringify(payload)}::jsonb, ${sender}) AS id`.execute(db);
  return (rows[0] as { id: number }).id;
}

/**
 * The events of `keys` created at or after `since`, oldest first, at most `limit` (the initial and
 * catch-up look of the event watcher; reads `event_key_time_idx`).
 */
export async function eventsSince(db: Db, keys: readonly string[], since: Date, limit: number): Promise<ExternalEvent[]> {
  if (keys.length === 0) return [];
  const { rows } = await sql<EventRow>`
    SELECT id, key, payload, sender, created_at FROM event
    WHERE key = ANY(${[...keys]}::text[]) AND created_at >= ${since}
    ORDER BY created_at, id LIMIT ${limit}`.execute(db);
  return rows.map(toEvent);
}

/** The oldest event of `key` since `sinceEpochMs` meeting `match` (an `EventSensor` poke). */
export async function findEvent(db: Db, key: string, sinceEpochMs: number, match: readonly JsonFieldCondition[]): Promise<ExternalEvent | undefined> {
  const events = await eventsSince(db, [key], new Date(sinceEpochMs), 10_000);
  return events.find((event) => match.length === 0 || failedJsonCondition(match, event.payload) === undefined);
}

/** The events among `ids` (as notified) whose key is in `keys`: one query per notification batch. */
export async function eventsByIds(db: Db, ids: readonly number[], keys: readonly string[]): Promise<ExternalEvent[]> {
  if (ids.length === 0 || keys.length === 0) return [];
  const { rows } = await sql<EventRow>`
    SELECT id, key, payload, sender, created_at FROM event
    WHERE id = ANY(${[...ids]}::bigint[]) AND key = ANY(${[...keys]}::text[])
    ORDER BY created_at, id`.execute(db);
  return rows.map(toEvent);
}

/**
 * Deletes up to `batch` events older than `retentionMs` (their consumers go with them, ON DELETE
 * CASCADE); returns how many. One statement, bounded: a backlog is worked off over several sweeps.
 */
export async function deleteExpiredEvents(db: Db, retentionMs: number, batch: number): Promise<number> {
  const result = await sql`
    DELETE FROM event WHERE id IN (
      SELECT id FROM event WHERE created_at < now() - make_interval(secs => ${retentionMs / 1000}) ORDER BY created_at LIMIT ${batch})`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export interface EventConsumption {
  eventId: number;
  task: TaskInstanceKey;
}

/** Records that these task instances resumed from these events; an event already deleted is skipped. */
export async function recordConsumers(db: Db, consumed: readonly EventConsumption[]): Promise<void> {
  if (consumed.length === 0) return;
  await sql`
    INSERT INTO event_consumer (event_id, dag_id, run_id, task_id, map_index)
    SELECT c.event_id, c.dag_id, c.run_id, c.task_id, c.map_index
    FROM unnest(${consumed.map((c) => c.eventId)}::bigint[], ${consumed.map((c) => c.task.dagId)}::text[],
                ${consumed.map((c) => c.task.runId)}::text[], ${consumed.map((c) => c.task.taskId)}::text[],
                ${consumed.map((c) => mapIndexOf(c.task))}::int[]) AS c(event_id, dag_id, run_id, task_id, map_index)
    WHERE EXISTS (SELECT 1 FROM event e WHERE e.id = c.event_id)
    ON CONFLICT DO NOTHING`.execute(db);
}

export interface ListedEvent extends ExternalEvent {
  /** The task instances that resumed from this event (at most 100 shown). */
  consumers: (TaskInstanceKey & { consumedAt: string })[];
}

export interface EventQuery {
  key?: string | undefined;
  limit: number;
  offset: number;
}

/** Recent events, newest first, with their consumers; `total` counts the events that match. */
export async function listEvents(db: Db, query: EventQuery): Promise<{ events: ListedEvent[]; total: number }> {
  const key = query.key ?? null;
  const [{ rows }, count] = await Promise.all([
    sql<EventRow & { consumers: { dagId: string; runId: string; taskId: string; consumedAt: string }[] }>`
      SELECT e.id, e.key, e.payload, e.sender, e.created_at,
        coalesce((SELECT json_agg(json_strip_nulls(json_build_object('dagId', c.dag_id, 'runId', c.run_id, 'taskId', c.task_id,
                    'mapIndex', CASE WHEN c.map_index >= 0 THEN c.map_index END, 'consumedAt', c.consumed_at)) ORDER BY c.consumed_at)
                  FROM (SELECT * FROM event_consumer c WHERE c.event_id = e.id ORDER BY c.consumed_at LIMIT 100) c), '[]') AS consumers
      FROM event e
      WHERE (${key}::text IS NULL OR e.key = ${key})
      ORDER BY e.created_at DESC, e.id DESC LIMIT ${query.limit} OFFSET ${query.offset}`.execute(db),
    sql<{ n: number }>`SELECT count(*)::int AS n FROM event WHERE (${key}::text IS NULL OR key = ${key})`.execute(db),
  ]);
  const events = rows.map((row) => ({
    ...toEvent(row),
    consumers: row.consumers.map((c) => ({ ...c, consumedAt: new Date(c.consumedAt).toISOString() })),
  }));
  return { events, total: count.rows[0]?.n ?? 0 };
}
