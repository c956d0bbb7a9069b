import type { Logger } from 'pino';
import { Metrics } from '../common/metrics.ts';
import { withTimeout } from '../common/sleep.ts';
import { Wakeup } from '../common/wakeup.ts';
import { Daemon, type DaemonState } from '../daemon/daemon.ts';
import type { Database } from '../db/database.ts';
import { assertSchemaCurrent } from '../db/migrations.ts';
import type { Notifier } from '../db/notifier.ts';
import { Channels } from '../db/protocol.ts';
import {
  claimTriggers,
  countOwnedTriggers,
  ownedButNotRunning,
  type ClaimedTrigger,
  deleteUnusedTriggers,
  ownedTriggerIds,
  releaseTriggers,
  submitOneOutcome,
  submitTriggerOutcomes,
  unassignDeadTriggerers,
} from '../db/triggers.ts';
import { lookupConnection } from '../secrets/lookup.ts';
import { ActiveTriggers, type ActiveOutcome } from './active-triggers.ts';
import { TimeTable } from './time-table.ts';
import type { TriggererEvents } from './triggerer-events.ts';
import { LoopWatchdog } from './loop-watchdog.ts';
import { RunWatcher } from './run-watcher.ts';
import { OutcomeWriter } from './outcome-writer.ts';
import { TimeoutSweeper } from '../daemon/timeout-sweeper.ts';
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

export type TriggererState = DaemonState;

/**
 * The triggerer daemon: claims trigger rows up to its capacity, runs them all on this event loop, and
 * writes their first events back (batched, fenced by ownership) so the task instances resume. Several
 * may run against one database; a dead one's triggers move to the others after the health threshold,
 * a stopped one hands its triggers over at once.
 */
export class Triggerer extends Daemon<TriggererEvents> {
  readonly options: CompiledTriggererOptions;
  readonly metrics: Metrics;
  readonly #deps: TriggererDeps;
  readonly #wakeup = new Wakeup();
  readonly #figures: TriggererMetrics;
  readonly #watchdog: LoopWatchdog;
  readonly #sweeper: TimeoutSweeper;
  readonly #clock = new TimeTable();
  #jobId: number | undefined;
  #triggers: ActiveTriggers | undefined;
  #syncWanted = true;
  #lastSync = 0;
  #deadCheckDue = true;
  #lastCleanup = 0;
  #released = 0;
  /** A claim statement failed: its commit may have landed, leaving rows owned here but not running. */
  #claimUncertain = false;

  constructor(deps: TriggererDeps, options: TriggererOptions = {}) {
    super('triggerer', deps.logger);
    this.options = compileTriggererOptions(options);
    this.#deps = deps;
    this.metrics = deps.metrics ?? new Metrics();
    this.#figures = new TriggererMetrics(this.metrics, () => this.#triggers?.size ?? 0, this.options.capacity);
    this.#watchdog = new LoopWatchdog({ thresholdMs: this.options.blockedThresholdMs, onBlocked: (ms) => this.#onBlocked(ms) });
    this.#sweeper = new TimeoutSweeper({ db: deps.database.db, logger: this.log, pollIntervalMs: this.options.pollIntervalMs });
  }

  get jobId(): number | undefined {
    return this.#jobId;
  }

  /** Ids of the triggers running (or whose event is being written) here now. */
  get activeTriggerIds(): number[] {
    return this.#triggers?.ids() ?? [];
  }

  /** Look for work now (what a notification does). */
  nudge(): void {
    this.#wakeup.nudge();
  }

  /*
   * Start-up, in order; stop() undoes it in reverse: the loop ends, the sweeper stops, notifications
   * are ignored, running triggers are cancelled, the events already produced are written, the
   * remaining rows are released (a peer takes them at once), and last the job row is ended.
   */
  protected override async onStart(): Promise<void> {
    const { database, notifier } = this.#deps;
    const db = database.db;
    await assertSchemaCurrent(database);
    const jobId = await this.registerJob(db, {
      jobType: 'triggerer',
      hostname: this.options.hostname,
      pid: this.options.pid,
      capacity: this.options.capacity,
    });
    this.#jobId = jobId;
    this.startHeartbeat(db, jobId, this.options.heartbeatIntervalMs, () => {
      this.#figures.heartbeat();
      this.#deadCheckDue = true; // also the moment to look for dead peers' triggers
      this.#wakeup.nudge();
    });
    this.#watchdog.start();
    this.onStop('watchdog', () => this.#watchdog.stop());
    this.onStop('timers', () => this.#clock.close());
    const writer = new OutcomeWriter<ActiveOutcome>({
      db,
      jobId,
      // A lone outcome (a wait firing on its own) goes through the prepared one-outcome statement.
      submitOutcomes: (writeDb, writer, outcomes) =>
        outcomes.length === 1 ? submitOneOutcome(database.pool, writer, outcomes[0] as ActiveOutcome) : submitTriggerOutcomes(writeDb, writer, outcomes),
      logger: this.log,
      maxBatch: this.options.writeBatchSize,
      onResult: (outcome, result) => this.#triggers?.written(outcome, result),
      onWritten: (result, size) => this.#figures.written(size, result.applied.size),
    });
    const runs = new RunWatcher({
      db,
      log: this.log,
      pollIntervalMs: this.options.watchPollIntervalMs,
      onCheck: (watches) => this.emit('watch:checked', { watches }),
    });
    this.onStop('run watcher', () => runs.close());
    const triggers = new ActiveTriggers({
      registry: this.#deps.registry,
      // Time triggers sleep on the shared clock; connections are resolved here, on this machine, so
      // a trigger row stores a connection id, never its secret.
      runtime: {
        sleepUntil: (epochMs, signal) => this.#clock.sleepUntil(epochMs, signal),
        getConnection: (connId) => lookupConnection(db, connId),
        watchStates: (query, decide, signal) => runs.watch(query, decide, signal),
      },
      writer,
      figures: this.#figures,
      log: this.log,
      capacity: this.options.capacity,
      emit: (event, payload) => this.emit(event, payload),
      listening: (event) => this.listening(event),
      onSlotFreed: () => {
        if (this.state === 'running') this.#wakeup.nudge();
      },
    });
    this.#triggers = triggers;
    this.onStop('release', async () => {
      this.#released = await releaseTriggers(db, jobId);
    });
    this.onStop('flush', () => this.#flushWrites(writer));
    this.onStop('cancel', () => triggers.cancelAll('triggerer stopping', this.options.shutdownTimeoutMs));
    this.subscribe(notifier, {
      notification: ({ channel, payload }) => {
        if (channel === Channels.ti) runs.notified(payload);
        if (channel !== Channels.trigger) return;
        if (payload === 'new') this.#sweeper.nudge();
        else if (payload !== 'released') this.#syncWanted = true;
        this.#wakeup.nudge();
      },
      reconnected: () => {
        runs.notified(undefined);
        this.#syncWanted = true;
        this.#wakeup.nudge();
        this.#sweeper.nudge();
      },
    });
    this.#sweeper.start();
    this.onStop('sweeper', () => this.#sweeper.stop());
    this.runLoop('triggerer', this.#wakeup, () => this.#loopPass());
    this.log.info({ capacity: this.options.capacity }, 'triggerer started');
    this.emit('started', { jobId });
  }

  protected override afterStop(): void {
    this.log.info({ released: this.#released }, 'triggerer stopped');
    this.emit('stopped', { released: this.#released });
  }

  /** One iteration of the loop; returns how long to sleep before the next. */
  async #loopPass(): Promise<number> {
    const sync = this.#syncWanted || Date.now() - this.#lastSync >= this.options.pollIntervalMs;
    this.#syncWanted = false;
    try {
      await this.#pass(sync);
    } catch (error) {
      this.#syncWanted = true; // after a failure, look at everything again
      throw error;
    }
    if (sync) this.#lastSync = Date.now();
    return this.options.pollIntervalMs - (Date.now() - this.#lastSync);
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
      if (this.#claimUncertain) {
        const adopted = await ownedButNotRunning(db, jobId, triggers.ids());
        this.#claimUncertain = false;
        if (adopted.length > 0) this.log.warn({ triggers: adopted.length }, 'running triggers a claim took while its reply was lost');
        for (const row of adopted) await triggers.start(row);
      }
    }
    if (sync || this.#deadCheckDue) {
      // Dead peers are looked for on heartbeats and polls, not on every NOTIFY: a claim woken by a
      // new trigger saves the round trip.
      this.#deadCheckDue = false;
      const moved = await unassignDeadTriggerers(db, jobId, this.options.healthCheckThresholdMs);
      if (moved > 0) this.log.warn({ triggers: moved }, 'took over the triggers of dead triggerers');
    }
    let total = 0;
    while (!this.stopSignal.aborted) {
      const limit = Math.min(this.options.capacity - triggers.size, this.options.claimBatchSize);
      if (limit <= 0) break;
      let claimed: ClaimedTrigger[];
      try {
        claimed = await claimTriggers(this.#deps.database.pool, jobId, limit);
      } catch (error) {
        this.#claimUncertain = true;
        throw error;
      }
      total += claimed.length;
      if (claimed.length > 0) this.emit('claimed', { triggerIds: claimed.map((c) => c.id) });
      for (const row of claimed) await triggers.start(row);
      if (claimed.length < limit) break;
    }
    this.emit('pass', { sync, claimed: total });
  }

  async #flushWrites(writer: OutcomeWriter<ActiveOutcome>): Promise<void> {
    const { timedOut } = await withTimeout(writer.flush(), this.options.shutdownTimeoutMs);
    if (timedOut) {
      this.log.error({ pending: writer.pending }, 'could not write all trigger events before the shutdown timeout; another triggerer will redo them');
      writer.abandon();
    }
  }

  #onBlocked(blockedMs: number): void {
    const since = Date.now() - blockedMs - 200;
    const triggerIds = this.#triggers?.suspects(since, 20) ?? [];
    this.#figures.blocked();
    this.log.warn(
      { blockedMs: Math.round(blockedMs), triggerIds, running: this.#triggers?.size ?? 0 },
      'the event loop was blocked, likely by a trigger doing synchronous work; triggers running then are listed (recently started first)',
    );
    this.emit('loop:blocked', { blockedMs, triggerIds });
  }
}
export type { TriggererEvents, TriggerInfo } from './triggerer-events.ts';
