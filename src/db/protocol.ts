import { sql, type RawBuilder } from 'kysely';
import type { Db } from './database.ts';

export { EVENT_KEY, FAIL_METHOD } from '../sdk/resume-keys.ts';

/*
 * The protocol between tsflow's processes, in one place: each NOTIFY channel and every payload sent
 * on it, and the names a resumed task reads from its row (`FAIL_METHOD`, `EVENT_KEY`, defined with
 * the SDK that reads them). A notification means "look now"; its payload is only a hint about what changed
 * (DESIGN.md, "NOTIFY channels"). Senders pass the channel and payload to `pg_notify` as bound
 * parameters taken from here; listeners parse what arrives with `parseNotification`.
 */

/** The channels tsflow uses. */
export const Channels = {
  /** Trigger rows inserted, released or to be cancelled: wakes triggerers (and timeout sweepers). */
  trigger: 'tsflow_trigger',
  /** Task instances the scheduler should look at (became scheduled, finished): wakes schedulers. */
  ti: 'tsflow_ti',
  /** DAGs changed (parsed, deactivated, paused, unpaused) or a file failed to import: wakes schedulers. */
  dag: 'tsflow_dag',
  /** An external event was sent (`tsflow_send_event`, at commit): wakes triggerers' event watchers. Payload: the event id. */
  event: 'tsflow_event',
} as const;

export type Channel = (typeof Channels)[keyof typeof Channels];

/** What `tsflow_trigger` says: trigger rows were inserted, released by a stopping triggerer, or should be cancelled. */
export const TRIGGER_PAYLOADS = ['new', 'released', 'cancel'] as const;
export type TriggerPayload = (typeof TRIGGER_PAYLOADS)[number];

/**
 * What `tsflow_ti` says: a try ended in one of these states (`finishTry`), deferred task instances
 * resumed (an event write) or timed out, a run was created or finished, task instances were cleared,
 * lost tries were handled, or a dead scheduler's queued task instances went back to the schedule
 * (`requeued`: sent by the scheduler takeover merged to main alongside this module), or a pool was
 * created or changed (`pool`: its tasks may fit now).
 */
export const TASK_INSTANCE_PAYLOADS = [
  'success',
  'failed',
  'up_for_retry',
  'skipped',
  'up_for_reschedule',
  'resumed',
  'timeout',
  'run',
  'run-finished',
  'cleared',
  'lost',
  'requeued',
  'pool',
] as const;
export type TaskInstancePayload = (typeof TASK_INSTANCE_PAYLOADS)[number];

/** What `tsflow_dag` says: serialized DAGs or their rows changed, or only an import error was recorded. */
export const DAG_PAYLOADS = ['changed', 'paused', 'import-error'] as const;
export type DagPayload = (typeof DAG_PAYLOADS)[number];

/** What `tsflow_event` says: the id of the event row just committed (digits), never the event's payload. */
export type EventPayload = string;

export type Notification =
  | { channel: typeof Channels.trigger; payload: TriggerPayload }
  | { channel: typeof Channels.ti; payload: TaskInstancePayload }
  | { channel: typeof Channels.dag; payload: DagPayload }
  | { channel: typeof Channels.event; payload: EventPayload };

/** The payloads of one channel. */
export type PayloadOf<C extends Channel> = Extract<Notification, { channel: C }>['payload'];

/**
 * `tsflow_ti` payloads after which no run can have finished (a task went back to the schedule, or
 * only a run's end was announced): the scheduler skips its look for finished runs.
 */
export const CANNOT_FINISH_A_RUN: ReadonlySet<TaskInstancePayload> = new Set<TaskInstancePayload>([
  'resumed',
  'up_for_retry',
  'up_for_reschedule',
  'timeout',
  'requeued',
  'run-finished',
  'pool',
]);

const KNOWN: { readonly [C in Exclude<Channel, typeof Channels.event>]: ReadonlySet<string> } = {
  [Channels.trigger]: new Set(TRIGGER_PAYLOADS),
  [Channels.ti]: new Set(TASK_INSTANCE_PAYLOADS),
  [Channels.dag]: new Set(DAG_PAYLOADS),
};

/**
 * A notification as received, or undefined when the channel or payload is not tsflow's (a newer
 * version's payload, or a hand-made NOTIFY): the listener still looks, as for any notification.
 */
export function parseNotification(channel: string, payload: string): Notification | undefined {
  if (channel === Channels.event) return /^\d{1,19}$/.test(payload) ? { channel, payload } : undefined;
  if (channel !== Channels.trigger && channel !== Channels.ti && channel !== Channels.dag) return undefined;
  return KNOWN[channel].has(payload) ? ({ channel, payload } as Notification) : undefined;
}

/**
 * `pg_notify(channel, payload)` as a fragment, for a statement that notifies as part of its own write
 * (`SELECT ${pgNotify(Channels.ti, 'resumed')} FROM …`); channel and payload are bound parameters.
 */
export function pgNotify<C extends Channel>(channel: C, payload: PayloadOf<C>): RawBuilder<void> {
  return sql<void>`pg_notify(${channel}, ${payload})`;
}

/** Queues a NOTIFY in the current transaction; PostgreSQL delivers it at commit, never on rollback. */
export async function notify<C extends Channel>(db: Db, channel: C, payload: PayloadOf<C>): Promise<void> {
  await sql`SELECT ${pgNotify(channel, payload)}`.execute(db);
}
