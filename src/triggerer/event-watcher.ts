import type { Logger } from 'pino';
import { deleteExpiredEvents, eventsByIds, eventsSince, recordConsumers, type EventConsumption } from '../db/events.ts';
import type { Db } from '../db/database.ts';
import { failedJsonCondition, type JsonFieldCondition } from '../sdk/http-expectation.ts';
import type { ExternalEvent } from '../sdk/trigger.ts';
import { ExternalEventTrigger } from '../../triggers/external-event-trigger.ts';
import type { ActiveOutcome } from './active-triggers.ts';

export interface EventWatcherOptions {
  db: Db;
  log: Logger;
  /** The safety-net look at every watched key when no notification arrives. */
  pollIntervalMs: number;
  /** Events older than this are deleted by the sweep this watcher runs. */
  retentionMs: number;
  /** How often the retention sweep runs. @default 60000 */
  sweepIntervalMs?: number;
  /** Most events deleted per sweep statement. @default 1000 */
  sweepBatch?: number;
  /** Most events one look reads (a look at more is logged: the oldest are used first). @default 10000 */
  readLimit?: number;
}

/** One `waitForEvent` call. */
interface Waiter {
  readonly key: string;
  readonly since: number;
  readonly match: readonly JsonFieldCondition[];
  readonly resolve: (event: ExternalEvent | undefined) => void;
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
}

const RETRY_MS = 1000;

/*
 * The triggerer's one watcher of external events, behind `TriggerRuntime.waitForEvent`. Waiters are
 * indexed by key. Every look is one query:
 * - a notification (`tsflow_event`, payload = the event id, delivered at commit) → the notified ids
 *   among the watched keys (all notifications that arrived meanwhile make one batch);
 * - a new waiter, a reconnect of the LISTEN connection, a failed look, and the slow poll → the
 *   events of the waiters' keys since the earliest `since` among them.
 * A waiter is registered before its first look (subscribe, then check), so an event committed while
 * that look runs is caught by the notification that follows. Each event goes to every waiter of its
 * key whose `since` and `match` it meets; a waiter takes the oldest such event and is done.
 *
 * It also sweeps expired events (the triggerer is the one daemon that needs them, so it owns their
 * retention): one bounded DELETE per sweep interval; several triggerers sweeping at once is harmless.
 */
export class EventWatcher {
  readonly #options: Required<EventWatcherOptions>;
  readonly #byKey = new Map<string, Set<Waiter>>();
  /** Waiters not yet checked against the events already stored. */
  #unchecked = new Set<Waiter>();
  #notifiedIds: number[] = [];
  #checkAll = false;
  #consumed: EventConsumption[] = [];
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #lastSweep = 0;
  #state: 'created' | 'running' | 'stopped' = 'created';

  constructor(options: EventWatcherOptions) {
    this.#options = { sweepIntervalMs: 60_000, sweepBatch: 1000, readLimit: 10_000, ...options };
  }

  /** Watched waits (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.#byKey.values()) n += set.size;
    return n;
  }

  start(): void {
    if (this.#state !== 'created') return;
    this.#state = 'running';
    this.#timer = setInterval(() => {
      this.#checkAll = true;
      this.#schedule();
    }, this.#options.pollIntervalMs);
    this.#timer.unref();
    this.#schedule(); // the first sweep
  }

  /** Ends every wait (each resolves with undefined) and stops looking. Records consumption still pending. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    if (this.#timer) clearInterval(this.#timer);
    if (this.#retry) clearTimeout(this.#retry);
    for (const waiters of this.#byKey.values()) for (const waiter of waiters) this.#end(waiter, undefined);
    this.#byKey.clear();
    await this.#running;
    await this.#flushConsumed().catch((error: unknown) => this.#options.log.warn({ err: error }, 'could not record which tasks consumed events'));
  }

  waitForEvent(key: string, sinceEpochMs: number, match: readonly JsonFieldCondition[], signal: AbortSignal): Promise<ExternalEvent | undefined> {
    if (signal.aborted || this.#state === 'stopped') return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter = { key, since: sinceEpochMs, match, resolve, signal, onAbort: () => this.#end(waiter, undefined) };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      let set = this.#byKey.get(key);
      if (!set) this.#byKey.set(key, (set = new Set()));
      set.add(waiter);
      this.#unchecked.add(waiter);
      this.#schedule();
    });
  }

  /** A `tsflow_event` notification: the id of a committed event. */
  notified(eventId: number): void {
    if (this.#byKey.size === 0) return; // nobody waits: nothing to look at (a waiter added later looks back itself)
    this.#notifiedIds.push(eventId);
    this.#schedule();
  }

  /** The LISTEN connection was lost and is back: notifications may have been missed, so look at everything. */
  reconnected(): void {
    this.#checkAll = true;
    this.#schedule();
  }

  /** A task instance resumed from `eventId` (its event write landed): recorded in the next look. */
  consumed(consumption: EventConsumption): void {
    this.#consumed.push(consumption);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#state !== 'running') return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.#look();
      } catch (error) {
        this.#options.log.warn({ err: error }, 'looking for external events failed; looking again shortly');
        this.#checkAll = true;
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.#schedule();
        }, RETRY_MS * (0.5 + Math.random()));
        this.#retry.unref();
        return;
      }
    } while (this.#again && this.#state === 'running');
  }

  async #look(): Promise<void> {
    const { db, log, readLimit } = this.#options;
    const ids = this.#notifiedIds;
    this.#notifiedIds = [];
    const toCheck = this.#checkAll ? this.#allWaiters() : [...this.#unchecked];
    this.#checkAll = false;
    this.#unchecked = new Set();
    try {
      if (toCheck.length > 0) {
        const keys = [...new Set(toCheck.map((w) => w.key))];
        const since = new Date(toCheck.reduce((min, w) => Math.min(min, w.since), Infinity));
        const events = await eventsSince(db, keys, since, readLimit);
        if (events.length === readLimit) log.warn({ keys: keys.length, limit: readLimit }, 'more stored events than one look reads; the oldest are matched first');
        this.#deliver(events, new Set(toCheck));
      }
      if (ids.length > 0 && this.#byKey.size > 0) {
        this.#deliver(await eventsByIds(db, ids, [...this.#byKey.keys()]), undefined);
      }
    } catch (error) {
      for (const waiter of toCheck) if (this.#byKey.get(waiter.key)?.has(waiter)) this.#unchecked.add(waiter);
      throw error;
    }
    await this.#flushConsumed();
    if (Date.now() - this.#lastSweep >= this.#options.sweepIntervalMs) {
      this.#lastSweep = Date.now();
      const deleted = await deleteExpiredEvents(db, this.#options.retentionMs, this.#options.sweepBatch);
      if (deleted > 0) log.info({ deleted }, 'deleted expired external events');
      if (deleted === this.#options.sweepBatch) this.#lastSweep = 0; // a backlog: sweep again next look
    }
  }

  /** Hands each event (oldest first) to the waiters of its key it satisfies; `only` limits to those waiters. */
  #deliver(events: readonly ExternalEvent[], only: ReadonlySet<Waiter> | undefined): void {
    for (const event of events) {
      const waiters = this.#byKey.get(event.key);
      if (!waiters) continue;
      const at = Date.parse(event.createdAt);
      for (const waiter of [...waiters]) {
        if (only && !only.has(waiter)) continue;
        if (at < waiter.since) continue;
        if (waiter.match.length > 0 && failedJsonCondition(waiter.match, event.payload) !== undefined) continue;
        this.#end(waiter, event);
      }
    }
  }

  #end(waiter: Waiter, event: ExternalEvent | undefined): void {
    const set = this.#byKey.get(waiter.key);
    if (!set?.delete(waiter)) return;
    if (set.size === 0) this.#byKey.delete(waiter.key);
    this.#unchecked.delete(waiter);
    waiter.signal.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(event);
  }

  #allWaiters(): Waiter[] {
    const all: Waiter[] = [];
    for (const set of this.#byKey.values()) all.push(...set);
    return all;
  }

  async #flushConsumed(): Promise<void> {
    if (this.#consumed.length === 0) return;
    const batch = this.#consumed;
    this.#consumed = [];
    try {
      await recordConsumers(this.#options.db, batch);
    } catch (error) {
      this.#consumed.unshift(...batch);
      throw error;
    }
  }
}

/** The consumption an applied outcome records: an `ExternalEventTrigger`'s event that resumed a task instance. */
export function consumedEvent(outcome: ActiveOutcome): EventConsumption | undefined {
  const task = outcome.active.task;
  if (outcome.kind !== 'event' || !task || outcome.active.classpath !== ExternalEventTrigger.classpath) return undefined;
  const eventId = (outcome.payload as { eventId?: unknown } | null)?.eventId;
  return typeof eventId === 'number' ? { eventId, task } : undefined;
}
