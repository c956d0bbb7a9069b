import os from 'node:os';
import { checkEventKey, InvalidEventKeyError, listEvents, sendEvent, type ListedEvent } from '../../db/events.ts';
import type { JsonValue } from '../../sdk/json.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { withRuntime } from '../runtime.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/*
 * External events from the command line (issue 17): `events send` goes through the same SQL function
 * an application calls in its own transaction; `events list` shows recent events and the task
 * instances that resumed from them.
 */

export const MAX_EVENTS_LIMIT = 1000;

function checkedKey(key: string): string {
  try {
    return checkEventKey(key);
  } catch (error) {
    if (error instanceof InvalidEventKeyError) throw new UsageError(error.message);
    throw error;
  }
}

/** `--payload JSON`: any JSON value; a usage error that says what was wrong (the text itself is not echoed: it may hold data). */
function parsePayload(text: string | undefined): JsonValue {
  if (text === undefined) return {};
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new UsageError(`--payload is not valid JSON (${(error as Error).message}): pass e.g. '{"orderId": 42}'; nothing was sent`);
  }
}

function senderOf(given: string | undefined): string {
  if (given !== undefined) {
    if (given.trim() === '') throw new UsageError('--as needs a name');
    return given;
  }
  try {
    return `cli:${os.userInfo().username}`;
  } catch {
    return 'cli';
  }
}

/** `tsflow events send KEY [--payload JSON] [--as NAME]`. */
export const eventsSend = defineCommand(
  {
    name: 'events send',
    summary: 'send external event KEY: every task waiting for KEY resumes with it',
    positionals: ['KEY'],
    options: {
      payload: { type: 'string', value: 'JSON', description: 'the event payload (any JSON value)', default: '{}' },
      as: { type: 'string', value: 'NAME', description: 'the sender recorded with the event', default: 'cli:<OS user>' },
      json: { ...JSON_OUTPUT, description: 'print { id, key }' },
    },
    details: ['Applications send from their own transaction with SELECT tsflow_send_event(key, payload): the event exists only if it commits.'],
  },
  async ({ values, positionals }, settings) => {
    const key = checkedKey(positionals[0] as string);
    const payload = parsePayload(values.payload);
    const sender = senderOf(values.as);
    return withRuntime(settings, {}, async (runtime) => {
      const id = await sendEvent(runtime.database.db, key, payload, sender);
      if (values.json) console.log(JSON.stringify({ id, key }));
      else console.log(`event ${id} sent to '${key}'`);
      return 0;
    });
  },
);

function eventLine(e: ListedEvent): string {
  const consumers = e.consumers.length === 0 ? 'not consumed' : `consumed by ${e.consumers.map((c) => `${c.dagId}.${c.taskId}@${c.runId}`).join(', ')}`;
  const payload = JSON.stringify(e.payload);
  const shown = payload.length > 80 ? `${payload.slice(0, 77)}...` : payload;
  return [String(e.id).padStart(6), e.createdAt, e.key, e.sender ?? '-', shown, consumers].join('  ');
}

/** `tsflow events list [KEY] [--limit N] [--json]`. */
export const eventsList = defineCommand(
  {
    name: 'events list',
    summary: 'recent external events (of KEY), newest first, and the task instances that consumed them',
    optionalPositionals: ['KEY'],
    options: {
      limit: { type: 'string', value: 'N', description: `events shown, at most ${MAX_EVENTS_LIMIT}`, default: '50' },
      json: { ...JSON_OUTPUT, description: 'print { events: [{ id, key, payload, sender, createdAt, consumers }], total }' },
    },
  },
  async ({ values, positionals }, settings) => {
    const key = positionals[0] === undefined ? undefined : checkedKey(positionals[0]);
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS_LIMIT) throw new UsageError(`--limit must be a whole number from 1 to ${MAX_EVENTS_LIMIT}, got '${values.limit}'`);
    return withRuntime(settings, {}, async (runtime) => {
      const listed = await listEvents(runtime.database.db, { key, limit, offset: 0 });
      if (values.json) console.log(JSON.stringify(listed));
      else if (listed.events.length === 0) console.log(key === undefined ? 'no events' : `no events of '${key}'`);
      else {
        for (const e of listed.events) console.log(eventLine(e));
        if (listed.total > listed.events.length) console.log(`(${listed.events.length} of ${listed.total}; --limit shows more)`);
      }
      return 0;
    });
  },
);

export const EVENT_COMMANDS = [eventsSend, eventsList] as const;
