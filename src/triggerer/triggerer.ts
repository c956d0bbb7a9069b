import type { Logger } from 'pino';
import { Metrics } from '../common/metrics.ts';
import { sleep, withTimeout } from '../common/sleep.ts';
import { TypedEmitter } from '../common/typed-emitter.ts';
import { backoffMs, Wakeup } from '../common/wakeup.ts';
import type { Database } from '../db/database.ts';
import { endJob, heartbeatJob, registerJob } from '../db/jobs.ts';
import { assertSchemaCurrent } from '../db/migrations.ts';
import type { Notifier } from '../db/notifier.ts';
import { Channels } from '../db/protocol.ts';
import {
  claimTriggers,
  countOwnedTriggers,
  deleteUnusedTriggers,
  ownedTriggerIds,
  releaseTriggers,
  unassignDeadTriggerers,
} from '../db/triggers.ts';
import { ActiveTriggers, type ActiveOutcome } from './active-triggers.ts';
import { TimeTable } from './time-table.ts';
import type { TriggererEvents } from './triggerer-events.ts';
import { LoopWatchdog } from './loop-watchdog.ts';
import { OutcomeWriter } from './outcome-writer.ts';
import { TimeoutSweeper } from './timeout-sweeper.ts';
import type { TriggerRegistry } from './trigger-registry.ts';
import { compileTriggererOptions, type CompiledTriggererOptions, type TriggererOptions } from './triggerer-options.ts';
import { TriggererMetrics } from './triggerer-metrics.ts';

export interface TriggererDeps {
  database: Database;
  registry: TriggerRegistry;
  logger: Logger;
  /** LISTEN connection; without one the triggerer relies on its poll alone (and stays correct). */
  notifier?: Notifier;
  metrics?: Metrics;
}

export type TriggererState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * The triggerer daemon: claims trigger rows up to its capacity, runs them all on this event loop, and
 * writes their first events back (batched, fenced by ownership) so the task instances resume. Several
 * may run against one database; a dead one's triggers move to the others after the health threshold,
 * a stopped one hands its triggers over at once.
 */
export class Triggerer extends TypedEmitter<TriggererEvents> {
  readonly options: CompiledTriggererOptions;
  readonly metrics: Metrics;
  readonly #deps: TriggererDeps;
  readonly #log: Logger;
  readonly #wakeup = new Wakeup();
  readonly #stopLoop = new AbortController();
  readonly #figures: TriggererMetrics;
  readonly #watchdog: LoopWatchdog;
  readonly #sweeper: TimeoutSweeper;
  readonly #unsubscribe: (() => void)[] = [];
  #state: TriggererState = 'created';
  #jobId: number | undefined;
  #writer: OutcomeWriter<ActiveOutcome> | undefined;
  #triggers: ActiveTriggers | undefined;
  readonly #clock = new TimeTable();
  #heartbeat: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #syncWanted = true;
  #deadCheckDue = true;
  #lastCleanup = 0;

  constructor(deps: TriggererDeps, options: TriggererOptions = {}) {
    super();
    this.options = compileTriggererOptions(options);
    this.#deps = deps;
    this.#log = deps.logger.child({ component: 'triggerer' });
    this.metrics = deps.metrics ?? new Metrics();
    this.#figures = new TriggererMetrics(this.metrics, () => this.#triggers?.size ?? 0, this.options.capacity);
    this.#watchdog = new LoopWatchdog({ thresholdMs: this.options.blockedThresholdMs, onBlocked: (ms) => this.#onBlocked(ms) });
    this.#sweeper = new TimeoutSweeper({ db: deps.database.db, logger: this.#log, pollIntervalMs: this.options.pollIntervalMs });
  }

  get state(): TriggererState {
    return this.#state;
  }

  get jobId(): number | undefined {
    return this.#jobId;
  }

  /** Ids of the triggers running (or whose event is being written) here now. */
  get activeTriggerIds(): number[] {
    return this.#triggers?.ids() ?? [];
  }

  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#state !== 'created') throw new Error(`a triggerer cannot start from state ${this.#state}`);
    this.#state = 'starting';
    const { database, notifier } = this.#deps;
    await assertSchemaCurrent(database);
    const jobId = await registerJob(database.db, {
      jobType: 'triggerer',
      hostname: this.options.hostname,
      pid: this.options.pid,
      capacity: this.options.capacity,
    });
    this.#jobId = jobId;
    this.#log.setBindings({ jobId });
    this.#writer = new OutcomeWriter<ActiveOutcome>({
      db: database.db,
      jobId,
      logger: this.#log,
      maxBatch: this.options.writeBatchSize,
      onResult: (outcome, result) => this.#triggers?.written(outcome, result),
      onWritten: (result, size) => this.#figures.written(size, result.applied.size),
    });
    this.#triggers = new ActiveTriggers({
      registry: this.#deps.registry,
      runtime: this.#clock,
      writer: this.#writer,
      figures: this.#figures,
      log: this.#log,
      capacity: this.options.capacity,
      emit: (event, payload) => this.emit(event, payload),
      listening: (event) => this.listening(event),
      onSlotFreed: () => {
        if (this.#state === 'running') this.#wakeup.nudge();
      },
    });
    if (notifier) {
      this.#unsubscribe.push(
        notifier.on('notification', ({ channel, payload }) => {
          if (channel !== Channels.trigger) return;
          if (payload === 'new') this.#sweeper.nudge();
          else if (payload !== 'released') this.#syncWanted = true;
          this.#wakeup.nudge();
        }),
        notifier.on('reconnected', () => {
          this.#syncWanted = true;
          this.#wakeup.nudge();
          this.#sweeper.nudge();
        }),
      );
    }
    this.#heartbeat = setInterval(() => void this.#beat(), this.options.heartbeatIntervalMs);
    this.#watchdog.start();
    this.#sweeper.start();
    this.#state = 'running';
    this.#loop = this.#runLoop();
    this.#log.info({ capacity: this.options.capacity }, 'triggerer started');
    this.emit('started', { jobId });
  }

  /** Look for work now (what a notification does). */
  nudge(): void {
    this.#wakeup.nudge();
  }

  /**
   * Graceful stop: no more claims, cancel running triggers, write the events already produced,
   * release the remaining rows (a peer takes them at once) and mark the job ended.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    if (this.#state !== 'running') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    const failures: unknown[] = [];
    const step = async (name: string, action: () => unknown): Promise<void> => {
      try {
        await action();
      } catch (error) {
        failures.push(error);
        this.#log.error({ err: error, step: name }, 'shutdown step failed');
      }
    };
    this.#stopLoop.abort();
    for (const off of this.#unsubscribe) off();
    await step('loop', () => this.#loop);
    await step('sweeper', () => this.#sweeper.stop());
    await step('cancel', () => this.#triggers?.cancelAll('triggerer stopping', this.options.shutdownTimeoutMs));
    await step('flush', () => this.#flushWrites());
    const jobId = this.#jobId as number;
    let released = 0;
    await step('release', async () => {
      released = await releaseTriggers(this.#deps.database.db, jobId);
    });
    await step('end job', () => endJob(this.#deps.database.db, jobId, 'success'));
    clearInterval(this.#heartbeat);
    this.#watchdog.stop();
    this.#clock.close();
    this.#state = 'stopped';
    this.#log.info({ released }, 'triggerer stopped');
    this.emit('stopped', { released });
    if (failures.length > 0) throw new AggregateError(failures, `triggerer ${jobId} stopped with ${failures.length} error(s)`);
  }

  async #runLoop(): Promise<void> {
    let failures = 0;
    let lastSync = 0;
    while (!this.#stopLoop.signal.aborted) {
      try {
        const sync = this.#syncWanted || Date.now() - lastSync >= this.options.pollIntervalMs;
        this.#syncWanted = false;
        await this.#pass(sync);
        if (sync) lastSync = Date.now();
        failures = 0;
      } catch (error) {
        if (this.#stopLoop.signal.aborted) break;
        this.#syncWanted = true;
        const delay = backoffMs(failures++, 200, 10_000);
        this.#log.error({ err: error, retryInMs: Math.round(delay) }, 'triggerer pass failed');
        await sleep(delay, this.#stopLoop.signal);
        continue;
      }
      await this.#wakeup.wait(this.options.pollIntervalMs - (Date.now() - lastSync), this.#stopLoop.signal);
    }
  }

  /** One look at the database: (with `sync`) drop what is no longer ours, then claim what fits. */
  async #pass(sync: boolean): Promise<void> {
    const db = this.#deps.database.db;
    const jobId = this.#jobId as number;
    const triggers = this.#triggers as ActiveTriggers;
    if (sync) {
      if (Date.now() - this.#lastCleanup >= this.options.pollIntervalMs) {
        // The safety net for triggers orphaned by other means (a run deleted in SQL): clear and the
        // timeout sweep delete their own triggers, so a 'cancel' NOTIFY does not need this scan.
        this.#lastCleanup = Date.now();
        await deleteUnusedTriggers(db);
      }
      // Rows are only ever given to this triggerer by its own claims, and every trigger it runs has
      // its row until the trigger is done, so owning fewer rows than it runs triggers means some were
      // deleted or reassigned: read the ids (100,000 of them, perhaps) to find which, and cancel
      // those. Spent rows awaiting deletion are left out of the comparison: the unused-trigger
      // cleanup above (here or in another triggerer) deletes them too, which is no reason to read.
      // A spent row still present can hide a taken row until it is deleted, a moment later.
      const owned = await countOwnedTriggers(db, jobId);
      if (owned < triggers.size) {
        triggers.cancelUnowned(await ownedTriggerIds(db, jobId), 'the trigger is no longer ours: its task left deferred, or another triggerer took it over');
      }
    }
    if (sync || this.#deadCheckDue) {
      // Dead peers are looked for on heartbeats and polls, not on every NOTIFY: a claim woken by a
      // new trigger saves the round trip.
      this.#deadCheckDue = false;
      const moved = await unassignDeadTriggerers(db, jobId, this.options.healthCheckThresholdMs);
      if (moved > 0) this.#log.warn({ triggers: moved }, 'took over the triggers of dead triggerers');
    }
    let total = 0;
    while (!this.#stopLoop.signal.aborted) {
      const limit = Math.min(this.options.capacity - triggers.size, this.options.claimBatchSize);
      if (limit <= 0) break;
      const claimed = await claimTriggers(db, jobId, limit);
      total += claimed.length;
      if (claimed.length > 0) this.emit('claimed', { triggerIds: claimed.map((c) => c.id) });
      for (const row of claimed) await triggers.start(row);
      if (claimed.length < limit) break;
    }
    this.emit('pass', { sync, claimed: total });
  }

  async #flushWrites(): Promise<void> {
    const writer = this.#writer as OutcomeWriter<ActiveOutcome>;
    const { timedOut } = await withTimeout(writer.flush(), this.options.shutdownTimeoutMs);
    if (timedOut) {
      this.#log.error({ pending: writer.pending }, 'could not write all trigger events before the shutdown timeout; another triggerer will redo them');
      writer.abandon();
    }
  }

  async #beat(): Promise<void> {
    if (this.#state !== 'running') return;
    try {
      await heartbeatJob(this.#deps.database.db, this.#jobId as number);
      this.#figures.heartbeat();
      this.#deadCheckDue = true; // also the moment to look for dead peers' triggers
      this.#wakeup.nudge();
    } catch (error) {
      this.#log.warn({ err: error }, 'heartbeat failed');
    }
  }

  #onBlocked(blockedMs: number): void {
    const since = Date.now() - blockedMs - 200;
    const triggerIds = this.#triggers?.suspects(since, 20) ?? [];
    this.#figures.blocked();
    this.#log.warn(
      { blockedMs: Math.round(blockedMs), triggerIds, running: this.#triggers?.size ?? 0 },
      'the event loop was blocked, likely by a trigger doing synchronous work; triggers running then are listed (recently started first)',
    );
    this.emit('loop:blocked', { blockedMs, triggerIds });
  }
}
export type { TriggererEvents, TriggerInfo } from './triggerer-events.ts';
