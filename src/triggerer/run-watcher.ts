import type { Logger } from 'pino';
import { readExternalStates } from '../db/cross-dag.ts';
import type { Db } from '../db/database.ts';
import type { TaskInstancePayload } from '../db/protocol.ts';
import type { ExternalRunState, ExternalStateQuery } from '../sdk/cross-dag.ts';
import { BatchWatcher } from './batch-watcher.ts';

/**
 * `tsflow_ti` payloads after which a watched run or task instance may have reached the state a
 * trigger waits for: a try ended, a run ended, task instances were cleared (a reset run), lost or
 * timed out. The others (a resume, a requeue, a new run, a pool change) change no watched outcome.
 * A task set `upstream_failed` by the scheduler sends nothing of its own: its run's end does.
 */
const RELEVANT: ReadonlySet<TaskInstancePayload> = new Set<TaskInstancePayload>([
  'success',
  'failed',
  'up_for_retry',
  'skipped',
  'up_for_reschedule',
  'timeout',
  'run-finished',
  'cleared',
  'lost',
]);

/** Payloads that can end a whole run: enough for watches that ask no task ids. */
const RUN_RELEVANT: ReadonlySet<TaskInstancePayload> = new Set<TaskInstancePayload>(['run-finished', 'cleared']);

/** The triggerer's one watcher over other DAGs' runs (`TriggerRuntime.watchStates`). */
export class RunWatcher {
  readonly #watcher: BatchWatcher<ExternalStateQuery, ExternalRunState[]>;
  /** Watches asking for task instances: while there are none, only a run's end is worth a read. */
  #taskWatches = 0;

  constructor(options: { db: Db; log: Logger; pollIntervalMs: number; onCheck?: (watches: number) => void }) {
    this.#watcher = new BatchWatcher({
      read: (queries) => readExternalStates(options.db, queries),
      pollIntervalMs: options.pollIntervalMs,
      log: options.log,
      ...(options.onCheck && { onCheck: options.onCheck }),
    });
  }

  get checks(): number {
    return this.#watcher.checks;
  }

  async watch<T>(query: ExternalStateQuery, decide: (runs: ExternalRunState[]) => T | undefined, signal: AbortSignal): Promise<T | undefined> {
    const asksTasks = (query.taskIds?.length ?? 0) > 0;
    if (asksTasks) this.#taskWatches += 1;
    try {
      return await this.#watcher.watch(query, (runs, q) => decide(runs.filter((r) => matches(r, q))), signal);
    } finally {
      if (asksTasks) this.#taskWatches -= 1;
    }
  }

  /** A `tsflow_ti` notification arrived; undefined payload: the LISTEN connection came back (look at everything). */
  notified(payload: TaskInstancePayload | undefined): void {
    if (payload === undefined || RUN_RELEVANT.has(payload) || (this.#taskWatches > 0 && RELEVANT.has(payload))) this.#watcher.nudge();
  }

  close(): void {
    this.#watcher.close();
  }
}

/** Whether a run read for the whole batch is one `query` asked for. */
function matches(run: ExternalRunState, query: ExternalStateQuery): boolean {
  if (run.dagId !== query.dagId) return false;
  if (query.runIds?.includes(run.runId)) return true;
  const at = Date.parse(run.logicalDate);
  return query.logicalDates?.some((d) => Date.parse(d) === at) ?? false;
}
