import type { LogLevel } from '../common/logger.ts';
import type { TaskInstanceKey } from '../db/schema.ts';
import type { TryClaim } from '../db/task-instances.ts';
import type { TaskRunResult, TaskStateChange } from '../runner/task-runner.ts';

/*
 * The messages between the LocalExecutor and its worker processes, over the IPC channel that
 * `child_process.fork` opens (JSON). A worker runs one task instance at a time.
 */

/** What a worker needs to run tasks. Sent over IPC, never on the command line: it holds the database URL. */
export interface WorkerConfig {
  databaseUrl: string;
  /** The DAG folder; a task's DAG is loaded from the file the `dag` table names, else the whole folder. */
  dagsFolder: string;
  /** Task log files go here; none when unset. */
  logsFolder?: string | undefined;
  logLevel: LogLevel;
  /** `TSFLOW_DEFAULT_DEFERRABLE`. */
  defaultDeferrable: boolean;
  /** The host name tries record (`TSFLOW_HOSTNAME`). @default os.hostname() */
  hostname?: string | undefined;
  /** How often a running try writes its heartbeat. @default 5000 */
  heartbeatIntervalMs?: number | undefined;
  /** The secret keys (`TSFLOW_SECRET_KEY`, or the embedded setup's key file), comma-separated; none when unset. */
  secretKeys?: string | undefined;
}

/** Executor → worker. */
export type ToWorker =
  | { type: 'init'; config: WorkerConfig }
  /** With a `claim` (a `tsflow worker`'s job), the try starts only if still queued for that try. */
  | { type: 'run'; key: TaskInstanceKey; claim?: TryClaim | undefined }
  | { type: 'shutdown' };

/** Worker → executor. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'init-failed'; message: string }
  /** A state the runner committed (after the commit). */
  | { type: 'state'; change: TaskStateChange }
  /** The run ended and recorded its outcome; with `retire`, the worker exits now (a DAG file it cannot re-import changed). */
  | { type: 'done'; result: TaskRunResult; retire?: boolean }
  /**
   * The run broke outside the task (its DAG would not load, the task instance was not queued, …).
   * `stale`: a claimed try was no longer queued, so nothing ran and nothing broke.
   */
  | { type: 'error'; message: string; stale?: boolean };

const TO_WORKER = new Set(['init', 'run', 'shutdown']);
const FROM_WORKER = new Set(['ready', 'init-failed', 'state', 'done', 'error']);

function typed(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const type = (message as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

export function isToWorker(message: unknown): message is ToWorker {
  return TO_WORKER.has(typed(message) ?? '');
}

export function isFromWorker(message: unknown): message is FromWorker {
  return FROM_WORKER.has(typed(message) ?? '');
}
