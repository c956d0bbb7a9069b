import os from 'node:os';
import { listUsers } from '../../db/api-users.ts';
import {
  HitlAlreadyAnsweredError,
  HitlForbiddenError,
  HitlNotFoundError,
  HitlNotWaitingError,
  InvalidHitlAnswerError,
  listHitlDetails,
  respondHitl,
  type HitlDetail,
  type HitlResponder,
} from '../../db/hitl.ts';
import { tiKeyString } from '../../db/schema.ts';
import type { JsonObject, JsonValue } from '../../sdk/json.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { withRuntime } from '../runtime.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/*
 * Human in the loop from the command line (issue 17): `hitl list` shows the requests, `hitl respond`
 * answers one through the same db/ function as the API and the Required actions page. The CLI has the
 * database, so it answers as an admin (`cli:<OS user>`) unless `--as` names the user to act as.
 */

export const MAX_HITL_LIMIT = 1000;

/** Exit codes of `hitl respond` besides 0 and 2 (a bad option or param). */
export const HITL_EXIT = { notFound: 1, notWaiting: 1, answered: 3, forbidden: 4 } as const;

export function hitlDetailJson(d: HitlDetail) {
  return {
    id: d.id,
    dagId: d.task.dagId,
    runId: d.task.runId,
    taskId: d.task.taskId,
    mapIndex: d.task.mapIndex ?? -1,
    tryNumber: d.tryNumber,
    subject: d.subject,
    body: d.body,
    options: d.options,
    params: d.params,
    assignees: d.assignees,
    defaults: d.defaults,
    multiple: d.multiple,
    createdAt: d.createdAt.toISOString(),
    taskState: d.taskState,
    pending: d.pending,
    response: d.answer,
  };
}

function detailLine(d: HitlDetail): string {
  const state = d.answer
    ? `answered ${d.answer.chosenOptions.join('+')} by ${d.answer.timedOut ? 'timeout (defaults)' : (d.answer.respondedBy ?? '?')} at ${d.answer.respondedAt}`
    : d.pending
      ? 'PENDING'
      : `unanswered, task ${d.taskState ?? 'gone'}`;
  const who = d.assignees.length === 0 ? 'anyone' : d.assignees.join(',');
  return [tiKeyString(d.task), JSON.stringify(d.subject), `[${d.options.join('|')}]`, `for ${who}`, state].join('  ');
}

/** `tsflow hitl list [--pending] [--dag DAG] [--limit N] [--json]`. */
export const hitlList = defineCommand(
  {
    name: 'hitl list',
    summary: 'human-in-the-loop requests: subject, options, assignees, and the answer (--pending: those awaiting one)',
    options: {
      pending: { type: 'boolean', description: 'only unanswered requests whose task still waits, oldest first' },
      dag: { type: 'string', value: 'DAG', description: 'only this DAG' },
      limit: { type: 'string', value: 'N', description: `requests shown, at most ${MAX_HITL_LIMIT}`, default: '100' },
      json: { ...JSON_OUTPUT, description: 'print { requests: [...], total }' },
    },
  },
  async ({ values }, settings) => {
    const limit = values.limit === undefined ? 100 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HITL_LIMIT) throw new UsageError(`--limit must be a whole number from 1 to ${MAX_HITL_LIMIT}, got '${values.limit}'`);
    return withRuntime(settings, {}, async (runtime) => {
      const listed = await listHitlDetails(runtime.database.db, { pending: values.pending ?? false, dagId: values.dag, limit, offset: 0 });
      if (values.json) console.log(JSON.stringify({ requests: listed.details.map(hitlDetailJson), total: listed.total }));
      else if (listed.details.length === 0) console.log(values.pending ? 'no pending requests' : 'no requests');
      else {
        for (const d of listed.details) console.log(detailLine(d));
        if (listed.total > listed.details.length) console.log(`(${listed.details.length} of ${listed.total}; --limit shows more)`);
      }
      return 0;
    });
  },
);

/** `--param name=JSON` (a bare word that is not JSON is taken as a string). */
export function parseParams(given: readonly string[]): JsonObject {
  const params: JsonObject = {};
  for (const text of given) {
    const at = text.indexOf('=');
    if (at <= 0) throw new UsageError(`--param must be NAME=JSON (e.g. --param reason='"late"' or --param count=3), got '${text}'`);
    const name = text.slice(0, at);
    const raw = text.slice(at + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(raw) as JsonValue;
    } catch {
      value = raw;
    }
    params[name] = value;
  }
  return params;
}

function parseMapIndex(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw new UsageError(`--map-index must be a whole number ≥ 0, got '${text}'`);
  return n;
}

async function responderFor(db: Parameters<typeof listUsers>[0], as: string | undefined): Promise<HitlResponder> {
  if (as === undefined) {
    let name = 'cli';
    try {
      name = `cli:${os.userInfo().username}`;
    } catch {
      // no OS user name: plain 'cli'
    }
    return { username: name, role: 'admin' };
  }
  if (as.trim() === '') throw new UsageError('--as needs a username');
  // Acting as a user: that API user's role; a name with no API account counts as an operator.
  const user = (await listUsers(db)).find((u) => u.username === as);
  return { username: as, role: user?.role ?? 'operator' };
}

/** `tsflow hitl respond DAG RUN_ID TASK [--map-index N] --option X … [--param k=JSON …] [--as USER] [--json]`. */
export const hitlRespond = defineCommand(
  {
    name: 'hitl respond',
    summary: "answer TASK's human-in-the-loop request in run RUN_ID: the task resumes with the answer",
    positionals: ['DAG', 'RUN_ID', 'TASK'],
    options: {
      'map-index': { type: 'string', value: 'N', description: 'the map index of a mapped task' },
      option: { type: 'string', value: 'OPTION', multiple: true, description: 'a chosen option (repeat for a request that takes several)' },
      param: { type: 'string', value: 'NAME=JSON', multiple: true, description: 'a param value, JSON (a bare word is a string)' },
      as: { type: 'string', value: 'USER', description: 'answer as this user (assignees are checked)', default: 'cli:<OS user>, as an admin' },
      json: { ...JSON_OUTPUT, description: 'print the request with its response' },
    },
    details: [
      'One answer only: answering again changes nothing. Exit 1: no such request or its task no longer waits; 2: an option or param the request does not allow; 3: answered already; 4: --as USER is not an assignee.',
    ],
  },
  async ({ values, positionals }, settings) => {
    const [dagId, runId, taskId] = positionals as [string, string, string];
    const mapIndex = parseMapIndex(values['map-index']);
    const chosen = values.option ?? [];
    if (chosen.length === 0) throw new UsageError('give the chosen option with --option OPTION (tsflow hitl list shows the options)');
    const paramsInput = parseParams(values.param ?? []);
    return withRuntime(settings, {}, async (runtime) => {
      const db = runtime.database.db;
      const responder = await responderFor(db, values.as);
      try {
        const answered = await respondHitl(db, { dagId, runId, taskId, mapIndex }, { chosenOptions: chosen, paramsInput }, responder);
        if (values.json) console.log(JSON.stringify(hitlDetailJson(answered)));
        else console.log(`answered ${tiKeyString(answered.task)} as ${responder.username}: ${answered.answer?.chosenOptions.join(', ') ?? ''}`);
        return 0;
      } catch (error) {
        const code = exitCodeOf(error);
        if (code === undefined) throw error;
        console.error(`tsflow: error: ${(error as Error).message}`);
        return code;
      }
    });
  },
);

function exitCodeOf(error: unknown): number | undefined {
  if (error instanceof InvalidHitlAnswerError) return 2;
  if (error instanceof HitlAlreadyAnsweredError) return HITL_EXIT.answered;
  if (error instanceof HitlForbiddenError) return HITL_EXIT.forbidden;
  if (error instanceof HitlNotFoundError) return HITL_EXIT.notFound;
  if (error instanceof HitlNotWaitingError) return HITL_EXIT.notWaiting;
  return undefined;
}

export const HITL_COMMANDS = [hitlList, hitlRespond] as const;
