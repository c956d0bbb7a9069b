import os from 'node:os';
import { Duration } from 'luxon';
import { cancelWait, extendWait, fireWait, type WaitExtension, type WaitingTask } from '../../db/wait-operations.ts';
import { listWaits, MAX_WAITS_LIMIT, WAIT_ORDERS, type Wait, type WaitOrder } from '../../db/waits.ts';
import { waitTargetText } from '../../triggerer/describe-wait.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { withRuntime } from '../runtime.ts';
import { UsageError } from '../settings.ts';
import { defineCommand, type OptionSpec } from '../usage.ts';

/*
 * Pending waits from the command line (issue 14): `triggers waits` pages through them as the Waits
 * page does; `triggers fire|cancel|extend ID` operate one, with the same db/ functions as the API.
 */

const AS: OptionSpec = { type: 'string', value: 'NAME', description: 'who is acting, as the task will see it', default: 'the OS user' };

/** `--as NAME`, or the OS user running the command. */
function actorOf(given: string | undefined): string {
  if (given !== undefined) {
    if (given.trim() === '') throw new UsageError('--as needs a name');
    return given;
  }
  try {
    return os.userInfo().username;
  } catch {
    throw new UsageError('cannot tell who you are (no OS user name): pass --as NAME');
  }
}

/** ID: a trigger id, as `triggers waits` lists it. Checked before the database is opened. */
function parseTriggerId(text: string): number {
  const id = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(id) || id < 1) {
    throw new UsageError(`ID must be a trigger id (a whole number ≥ 1, as tsflow triggers waits lists it), got '${text}'`);
  }
  return id;
}

const UNITS: Readonly<Record<string, string>> = { s: 'seconds', m: 'minutes', h: 'hours', d: 'days', w: 'weeks' };

/** `30m`, `1h30m`, `90s`, `2d`, or an ISO 8601 duration (`PT30M`). */
export function parseShortDuration(text: string, name: string): Duration {
  const trimmed = text.trim();
  let duration: Duration | undefined;
  if (/^P/i.test(trimmed)) duration = Duration.fromISO(trimmed.toUpperCase());
  else if (/^(\d+(\.\d+)?[smhdw])+$/i.test(trimmed)) {
    const parts: Record<string, number> = {};
    for (const [, amount, unit] of trimmed.matchAll(/(\d+(?:\.\d+)?)([smhdw])/gi)) {
      const key = UNITS[(unit as string).toLowerCase()] as string;
      parts[key] = (parts[key] ?? 0) + Number(amount);
    }
    duration = Duration.fromObject(parts);
  }
  if (!duration?.isValid || duration.toMillis() <= 0) {
    throw new UsageError(`${name} must be a duration longer than zero such as 30m, 1h30m, 90s, 2d or PT30M, got '${text}'`);
  }
  return duration;
}

function taskText(t: Pick<WaitingTask, 'dagId' | 'runId' | 'taskId'>): string {
  return `${t.dagId}.${t.taskId}@${t.runId}`;
}

function waitJson(w: Wait) {
  return {
    ...w,
    createdAt: w.createdAt.toISOString(),
    triggerTimeout: w.triggerTimeout?.toISOString() ?? null,
    ageSeconds: Math.round(w.ageSeconds),
    timeLeftSeconds: w.timeLeftSeconds === null ? null : Math.round(w.timeLeftSeconds),
  };
}

function waitLine(w: Wait): string {
  const owner = w.triggererId === null ? 'unassigned' : `triggerer ${w.triggererId} (${w.triggererHostname ?? '?'})`;
  const left = w.timeLeftSeconds === null ? 'no timeout' : `times out in ${Math.round(w.timeLeftSeconds)}s`;
  const what = waitTargetText(w.waitsFor);
  return [`${String(w.triggerId).padStart(6)}`, taskText(w), `try ${w.tryNumber}`, w.classpath, what, owner, `age ${Math.round(w.ageSeconds)}s`, left]
    .filter((part) => part !== '')
    .join('  ');
}

/** `tsflow triggers waits [filters] [--limit N] [--cursor C] [--json]`. */
export const triggersWaits = defineCommand(
  {
    name: 'triggers waits',
    summary: 'pending waits, a page at a time: task, what it waits for, owner, age, time left before its timeout',
    options: {
      dag: { type: 'string', value: 'DAG', description: 'only this DAG' },
      task: { type: 'string', value: 'TASK', description: 'only this task id' },
      run: { type: 'string', value: 'RUN_ID', description: 'only this run' },
      classpath: { type: 'string', value: 'CLASSPATH', description: 'only triggers of this class (tsflow.triggers.DateTimeTrigger)' },
      triggerer: { type: 'string', value: 'ID', description: "only those this triggerer job runs, or 'unassigned'" },
      search: { type: 'string', value: 'TEXT', description: 'DAG, run or task id containing TEXT' },
      order: { type: 'string', value: 'ORDER', description: `${WAIT_ORDERS.join(' or ')}: soonest timeout first, or oldest first`, default: 'timeout' },
      desc: { type: 'boolean', description: 'reverse the order' },
      limit: { type: 'string', value: 'N', description: `waits per page, at most ${MAX_WAITS_LIMIT}`, default: '100' },
      cursor: { type: 'string', value: 'C', description: 'the page after the one that printed this cursor' },
      json: JSON_OUTPUT,
    },
    details: ['Prints the cursor of the next page last (text: "next: --cursor C"; JSON: nextCursor), and the total of waits matching.'],
  },
  async ({ values }, settings) => {
    const order = values.order ?? 'timeout';
    if (!WAIT_ORDERS.includes(order as WaitOrder)) throw new UsageError(`--order must be ${WAIT_ORDERS.join(' or ')}, got '${order}'`);
    const limit = values.limit === undefined ? 100 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_WAITS_LIMIT) throw new UsageError(`--limit must be a whole number from 1 to ${MAX_WAITS_LIMIT}, got '${values.limit}'`);
    let triggererId: number | 'unassigned' | undefined;
    if (values.triggerer !== undefined) triggererId = values.triggerer === 'unassigned' ? 'unassigned' : parseTriggerId(values.triggerer);
    return withRuntime(settings, {}, async (runtime) => {
      const page = await listWaits(runtime.database.db, {
        dagId: values.dag,
        taskId: values.task,
        runId: values.run,
        classpath: values.classpath,
        triggererId,
        search: values.search,
        order: order as WaitOrder,
        direction: values.desc ? 'desc' : 'asc',
        limit,
        cursor: values.cursor,
      });
      if (values.json) {
        console.log(JSON.stringify({ waits: page.waits.map(waitJson), nextCursor: page.nextCursor, total: page.total, totalExact: page.totalExact, now: page.now.toISOString() }));
        return 0;
      }
      for (const w of page.waits) console.log(waitLine(w));
      const total = page.total === null ? '?' : `${page.totalExact ? '' : 'about '}${page.total}`;
      console.log(`${page.waits.length} shown of ${total} pending${page.nextCursor ? `; next: --cursor ${page.nextCursor}` : ''}`);
      return 0;
    });
  },
);

/** `tsflow triggers fire ID [--as NAME]`. */
export const triggersFire = defineCommand(
  {
    name: 'triggers fire',
    summary: 'fire pending wait ID now: its task resumes as if the trigger had fired, with { firedBy, firedAt } in the event',
    positionals: ['ID'],
    options: { as: AS, json: JSON_OUTPUT },
    details: [
      'The event is { firedBy, firedAt } (a time trigger\'s also carries its moment). Exit 1 if ID is unknown or no longer pending.',
    ],
  },
  async ({ values, positionals }, settings) => {
    const id = parseTriggerId(positionals[0] as string);
    const actor = actorOf(values.as);
    return withRuntime(settings, {}, async (runtime) => {
      const fired = await fireWait(runtime.database.db, id, actor);
      if (values.json) console.log(JSON.stringify({ ...fired, firedAt: fired.firedAt.toISOString() }));
      else console.log(`fired trigger ${id} as ${fired.actor}: resumed ${fired.resumed.map(taskText).join(', ')}`);
      return 0;
    });
  },
);

/** `tsflow triggers cancel ID [--as NAME]`. */
export const triggersCancel = defineCommand(
  {
    name: 'triggers cancel',
    summary: 'cancel pending wait ID: its task\'s try fails with "cancelled by NAME" (retries apply)',
    positionals: ['ID'],
    options: { as: AS, json: JSON_OUTPUT },
    details: ['The triggerer running it stops it. Exit 1 if ID is unknown or no longer pending.'],
  },
  async ({ values, positionals }, settings) => {
    const id = parseTriggerId(positionals[0] as string);
    const actor = actorOf(values.as);
    return withRuntime(settings, {}, async (runtime) => {
      const cancelled = await cancelWait(runtime.database.db, id, actor);
      if (values.json) console.log(JSON.stringify(cancelled));
      else console.log(`cancelled trigger ${id}: ${cancelled.failed.map(taskText).join(', ')} fails with "${cancelled.error}"`);
      return 0;
    });
  },
);

/** `tsflow triggers extend ID --by 30m | --until ISO [--as NAME]`. */
export const triggersExtend = defineCommand(
  {
    name: 'triggers extend',
    summary: "move pending wait ID's timeout: --by a duration later, or --until a moment",
    positionals: ['ID'],
    options: {
      by: { type: 'string', value: 'DURATION', description: 'later by this much: 30m, 1h30m, 90s, 2d or PT30M' },
      until: { type: 'string', value: 'ISO', description: 'to this moment, ISO 8601 (2026-12-03T18:00:00Z); sets a timeout on a wait without one' },
      as: AS,
      json: JSON_OUTPUT,
    },
    details: ['The new timeout must be in the future. Exit 1 if ID is unknown or no longer pending, 2 for a bad option.'],
  },
  async ({ values, positionals }, settings) => {
    const id = parseTriggerId(positionals[0] as string);
    if ((values.by === undefined) === (values.until === undefined)) throw new UsageError('give exactly one of --by DURATION or --until ISO');
    let extension: WaitExtension;
    if (values.until !== undefined) {
      const until = new Date(values.until);
      if (!/^\d{4}-\d{2}-\d{2}T/.test(values.until) || !Number.isFinite(until.getTime())) {
        throw new UsageError(`--until must be an ISO 8601 moment such as 2026-12-03T18:00:00Z, got '${values.until}'`);
      }
      extension = { until };
    } else {
      extension = { by: parseShortDuration(values.by as string, '--by') };
    }
    const actor = actorOf(values.as);
    return withRuntime(settings, {}, async (runtime) => {
      const extended = await extendWait(runtime.database.db, id, actor, extension);
      if (values.json) console.log(JSON.stringify({ ...extended, triggerTimeout: extended.triggerTimeout.toISOString() }));
      else console.log(`trigger ${id} now times out at ${extended.triggerTimeout.toISOString()} (${extended.tasks.map(taskText).join(', ')})`);
      return 0;
    });
  },
);
