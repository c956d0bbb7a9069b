import type { Logger } from 'pino';
import { sleep } from '../common/sleep.ts';
import { storableText } from '../common/storable-json.ts';
import type { ClaimedTrigger, TriggerOutcome } from '../db/triggers.ts';
import { BaseTrigger, type TriggerEvent, type TriggerRuntime } from '../sdk/trigger.ts';
import type { JsonObject, JsonValue } from '../sdk/json.ts';
import type { OutcomeWriter, WriteResult } from './outcome-writer.ts';
import { failurePayload, firstEvent } from './run-trigger.ts';
import { TriggerLog } from './trigger-log.ts';
import type { TriggerRegistry } from './trigger-registry.ts';
import type { TriggerInfo, TriggererEvents } from './triggerer-events.ts';
import type { TriggererMetrics } from './triggerer-metrics.ts';

/** One trigger this triggerer runs. Kept small: a triggerer may hold 100,000 of them. */
interface ActiveTrigger extends TriggerInfo {
  readonly classpath: string;
  readonly controller: AbortController;
  readonly startedAt: number;
  /** running → writing (its outcome is being stored), or running → cancelling (aborted, winding down). */
  phase: 'running' | 'cancelling' | 'writing';
  dueAt: number | undefined;
  /** Fired at minus due at, for a time trigger's event (whole ms). */
  latenessMs: number | undefined;
  trigger: BaseTrigger | undefined;
  log: TriggerLog;
}

/** An outcome on its way to the writer, with the trigger it ends. */
export interface ActiveOutcome extends TriggerOutcome {
  readonly active: ActiveTrigger;
}

/** A cancelled trigger that ignores its signal is forgotten after this long (and its cleanup run). */
const CANCEL_GRACE_MS = 10_000;
/**
 * A failure's error and traceback are each cut to this many characters: a trigger that throws a
 * 10 MB message (a whole response body) must not make a 10 MB row, log line and event.
 */
export const MAX_FAILURE_TEXT = 64 * 1024;

export interface ActiveTriggersDeps {
  registry: Pick<TriggerRegistry, 'lookup' | 'resolve'>;
  /** The shared clock handed to triggers (`run(signal, runtime)`). */
  runtime: TriggerRuntime;
  /** Reports each result back through `ActiveTriggers.written`. */
  writer: Pick<OutcomeWriter<ActiveOutcome>, 'submit'>;
  figures: Pick<TriggererMetrics, 'fired' | 'failed' | 'cancelled'>;
  log: Logger;
  capacity: number;
  /** Announces a lifecycle event (the triggerer's emitter). */
  emit: <K extends keyof TriggererEvents & string>(event: K, payload: TriggererEvents[K]) => void;
  listening: (event: keyof TriggererEvents & string) => boolean;
  /** A slot freed while the triggerer was full: claim again. */
  onSlotFreed: () => void;
}

/**
 * The triggers a triggerer runs, from claim to written outcome: each is rebuilt from its row, run
 * on this event loop until its first event, cleaned up, and its event or failure handed to the
 * batched, fenced writer. Cancellation aborts the trigger's signal and forgets it once it winds down.
 */
export class ActiveTriggers {
  readonly #deps: ActiveTriggersDeps;
  readonly #active = new Map<number, ActiveTrigger>();

  constructor(deps: ActiveTriggersDeps) {
    this.#deps = deps;
  }

  get size(): number {
    return this.#active.size;
  }

  ids(): number[] {
    return [...this.#active.keys()];
  }

  /** Up to `limit` ids, those started at or after `since` (epoch ms) first: the likely culprits of a blocked loop. */
  suspects(since: number, limit: number): number[] {
    const recent: number[] = [];
    const others: number[] = [];
    for (const active of this.#active.values()) {
      if (active.startedAt >= since) recent.push(active.triggerId);
      else if (others.length < limit) others.push(active.triggerId);
    }
    return [...recent, ...others].slice(0, limit);
  }

  async start(row: ClaimedTrigger): Promise<void> {
    const existing = this.#active.get(row.id);
    if (existing) {
      // Claimed again while still ours here (ownership lost and regained between two passes): the
      // run in progress goes on. One being cancelled is superseded; it still cleans up, silently.
      if (existing.phase !== 'cancelling') return;
      this.#forget(existing);
    }
    const active: ActiveTrigger = {
      triggerId: row.id,
      task: row.task,
      classpath: row.classpath,
      controller: new AbortController(),
      startedAt: Date.now(),
      phase: 'running',
      dueAt: undefined,
      latenessMs: undefined,
      trigger: undefined,
      log: new TriggerLog(this.#deps.log, row.id, row.task, row.classpath),
    };
    this.#active.set(row.id, active);
    if (this.#deps.listening('trigger:started')) this.#deps.emit('trigger:started', { triggerId: row.id, task: row.task });
    let trigger: BaseTrigger;
    try {
      const { registry } = this.#deps;
      const TriggerClass = registry.lookup(row.classpath) ?? (await registry.resolve(row.classpath));
      trigger = new TriggerClass(row.kwargs);
      trigger.useLogger(active.log);
      active.dueAt = trigger.dueAtMillis();
    } catch (error) {
      this.#finish(active, 'failure', storableFailure(error));
      return;
    }
    active.trigger = trigger;
    active.log.debug({}, 'trigger started');
    let first: Promise<TriggerEvent | undefined>;
    try {
      first = firstEvent(trigger, active.controller.signal, this.#deps.runtime);
    } catch (error) {
      first = Promise.reject(error); // a run() that throws before returning its promise or iterator
    }
    first.then(
      (event) => this.#settle(active, event, undefined),
      (error: unknown) => this.#settle(active, undefined, error ?? new Error('trigger failed')),
    );
  }

  /** Cancels the running triggers whose ids are not in `owned` (cleared tasks, triggers taken over). */
  cancelUnowned(owned: ReadonlySet<number>, reason: string): void {
    for (const active of this.#active.values()) {
      if (!owned.has(active.triggerId)) this.#cancel(active, reason);
    }
  }

  /** Cancels every running trigger and waits (at most `timeoutMs`) for them to wind down and clean up. */
  async cancelAll(reason: string, timeoutMs: number): Promise<void> {
    for (const active of this.#active.values()) this.#cancel(active, reason);
    const deadline = Date.now() + timeoutMs;
    const windingDown = (): boolean => [...this.#active.values()].some((a) => a.phase !== 'writing');
    while (windingDown() && Date.now() < deadline) await sleep(10);
  }

  /**
   * The trigger's run ended (event, no event, error), or a cancelled one finally wound down. Not
   * async: with no cleanup to await (the common case) the outcome goes to the writer in this same
   * turn, and nothing but the outcome is kept while it waits to be written.
   */
  #settle(active: ActiveTrigger, event: TriggerEvent | undefined, error: unknown): void {
    if (active.phase === 'writing') return;
    if (this.#active.get(active.triggerId) !== active) {
      void this.#cleanup(active); // superseded or forgotten: clean up, report nothing
      return;
    }
    if (active.phase === 'cancelling') {
      void this.#cleanup(active).then(() => this.#forget(active));
      return;
    }
    let kind: TriggerOutcome['kind'] = 'failure';
    let payload: JsonValue;
    if (error !== undefined) payload = storableFailure(error);
    else if (event) {
      kind = 'event';
      payload = event.payload;
    } else {
      const name = active.trigger?.constructor.name ?? active.classpath;
      payload = storableFailure(new Error(`trigger ${name} ended without an event`));
    }
    active.phase = 'writing'; // from here on a cancel changes nothing: the fence decides
    if (hasCleanup(active.trigger)) {
      void this.#cleanup(active).then(() => this.#finish(active, kind, payload));
    } else {
      active.trigger = undefined;
      this.#finish(active, kind, payload);
    }
  }

  async #cleanup(active: ActiveTrigger): Promise<void> {
    const trigger = active.trigger;
    active.trigger = undefined;
    if (!hasCleanup(trigger)) return;
    try {
      await trigger.cleanup();
    } catch (error) {
      active.log.warn({ err: error }, 'trigger cleanup failed');
    }
  }

  #finish(active: ActiveTrigger, kind: TriggerOutcome['kind'], payload: JsonValue): void {
    active.phase = 'writing';
    if (kind === 'event' && active.dueAt !== undefined) active.latenessMs = Date.now() - active.dueAt;
    this.#deps.writer.submit({ triggerId: active.triggerId, kind, payload, latenessMs: active.latenessMs, active });
  }

  /** The writer committed (or the fence refused) a trigger's outcome: the trigger is done. */
  written(outcome: ActiveOutcome, result: WriteResult): void {
    const { figures, capacity, emit, listening } = this.#deps;
    const active = outcome.active;
    const wasFull = this.#active.size >= capacity;
    if (this.#active.get(active.triggerId) === active) this.#active.delete(active.triggerId);
    if (outcome.kind === 'event') {
      const latenessMs = active.latenessMs;
      figures.fired(latenessMs);
      active.log.debug({ latenessMs, result }, 'trigger fired');
      if (listening('trigger:fired')) emit('trigger:fired', { triggerId: active.triggerId, task: active.task, latenessMs, result });
    } else {
      const error = String((outcome.payload as { error?: unknown }).error ?? 'trigger failure');
      figures.failed();
      active.log.warn({ error, result }, 'trigger failed');
      if (listening('trigger:failed')) emit('trigger:failed', { triggerId: active.triggerId, task: active.task, error, result });
    }
    if (wasFull) this.#deps.onSlotFreed();
  }

  /** Aborts a running trigger; it is forgotten once it winds down (or after a grace period if it ignores the signal). */
  #cancel(active: ActiveTrigger, reason: string): void {
    if (active.phase !== 'running') return;
    active.phase = 'cancelling';
    active.log.info({ reason }, 'cancelling trigger');
    active.controller.abort(new Error(reason));
    setTimeout(() => {
      if (this.#active.get(active.triggerId) !== active || active.phase !== 'cancelling') return;
      active.log.warn({ graceMs: CANCEL_GRACE_MS }, 'a cancelled trigger ignored its abort signal; forgetting it');
      void this.#cleanup(active).then(() => this.#forget(active));
    }, CANCEL_GRACE_MS).unref();
  }

  #forget(active: ActiveTrigger): void {
    if (this.#active.get(active.triggerId) !== active) return;
    this.#active.delete(active.triggerId);
    const reason = String((active.controller.signal.reason as Error | undefined)?.message ?? 'cancelled');
    this.#deps.figures.cancelled();
    if (this.#deps.listening('trigger:cancelled')) this.#deps.emit('trigger:cancelled', { triggerId: active.triggerId, task: active.task, reason });
  }
}

/** Whether the trigger overrides `cleanup()`; the default does nothing and is not awaited. */
function hasCleanup(trigger: BaseTrigger | undefined): trigger is BaseTrigger {
  return trigger !== undefined && trigger.cleanup !== BaseTrigger.prototype.cleanup;
}

/**
 * The failure payload for whatever a trigger threw, in a form the database stores: never throws
 * (not even for a thrown value whose `toString` does), NUL and lone surrogates replaced by U+FFFD,
 * error and traceback each cut to `MAX_FAILURE_TEXT`.
 */
export function storableFailure(thrown: unknown): JsonObject {
  let payload: { error: unknown; traceback: unknown };
  try {
    const built = thrown instanceof Error ? failurePayload(thrown) : undefined;
    payload = built ? { error: built['error'], traceback: built['traceback'] } : { error: describeThrown(thrown), traceback: '' };
  } catch {
    payload = { error: `a trigger threw a ${typeof thrown} that cannot be printed`, traceback: '' };
  }
  return {
    error: storableText(typeof payload.error === 'string' ? payload.error : 'trigger failure', MAX_FAILURE_TEXT),
    traceback: storableText(typeof payload.traceback === 'string' ? payload.traceback : '', MAX_FAILURE_TEXT),
  };
}

/** A thrown value that is not an Error: a string as is, a plain object as JSON (`[object Object]` says nothing). */
function describeThrown(thrown: unknown): string {
  if (typeof thrown === 'string') return thrown;
  let shown: string | undefined;
  if (typeof thrown === 'object' && thrown !== null) {
    try {
      shown = JSON.stringify(thrown) as string | undefined;
    } catch {
      // circular, or a toJSON that throws: fall back to the type tag
    }
    shown ??= Object.prototype.toString.call(thrown);
  } else {
    shown = String(thrown);
  }
  return `a trigger threw a non-Error value: ${shown}`;
}
