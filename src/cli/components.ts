import { DateTime } from 'luxon';
import type { CleanupStack } from '../common/cleanup-stack.ts';
import type { LogLevel } from '../common/logger.ts';
import type { Metrics } from '../common/metrics.ts';
import type { DagBag } from '../dag-bag/dag-bag.ts';
import { fileStamp, loadDag } from '../dag-bag/load-dag.ts';
import { DagCodeHost } from '../dag-code/dag-code-host.ts';
import { DagProcessor } from '../dag-processor/dag-processor.ts';
import type { DagProcessorOptions } from '../dag-processor/dag-processor-options.ts';
import { Notifier } from '../db/notifier.ts';
import { Channels, type Channel } from '../db/protocol.ts';
import type { TaskInstanceKey } from '../db/schema.ts';
import type { BaseExecutor } from '../executors/base-executor.ts';
import { GraphileExecutor } from '../executors/graphile-executor.ts';
import { LocalExecutor } from '../executors/local-executor.ts';
import { SequentialExecutor } from '../executors/sequential-executor.ts';
import { runTaskInstance } from '../runner/task-runner.ts';
import { Scheduler, type SchedulerOptions } from '../scheduler/scheduler.ts';
import type { Dag } from '../sdk/dag.ts';
import { keyringSecret } from '../secrets/process-keyring.ts';
import { TriggerRegistry } from '../triggerer/trigger-registry.ts';
import { Triggerer } from '../triggerer/triggerer.ts';
import type { TriggererOptions } from '../triggerer/triggerer-options.ts';
import type { Runtime } from './runtime.ts';
import { UsageError } from './settings.ts';

export const EXECUTORS = ['local', 'sequential', 'graphile'] as const;

/**
 * The scheduler as `tsflow scheduler` and `standalone` run it: it reads serialized DAGs from the
 * database, and the DAG code it needs (startFromTrigger triggers, custom timetables) runs in a DAG
 * code host child process, closed when the scheduler stops.
 */
export function createCliScheduler(
  runtime: Runtime,
  folder: string,
  executor: BaseExecutor,
  notifier: Notifier,
  cleanup: CleanupStack,
  options: SchedulerOptions = {},
): Scheduler {
  const host = new DagCodeHost({ dagsFolder: folder, logger: runtime.logger.child({ component: 'dag-code-host' }) });
  cleanup.push('DAG code host', () => host.close());
  return new Scheduler({ database: runtime.database, executor, logger: runtime.logger, notifier, startTriggerBuilder: host }, options);
}

/**
 * The DAG processor a `scheduler` or `standalone` runs inside (unless `--no-dag-processor`): started,
 * and its first pass over the folder written, before the scheduler starts.
 */
export async function startEmbeddedDagProcessor(
  runtime: Runtime,
  folder: string,
  notifier: Notifier,
  cleanup: CleanupStack,
  options: DagProcessorOptions = {},
): Promise<DagProcessor> {
  const processor = new DagProcessor({ database: runtime.database, folder, logger: runtime.logger.child({ component: 'dag-processor' }), notifier }, options);
  const firstPass = new Promise<void>((resolve) => {
    const off = processor.on('pass', () => {
      off();
      resolve();
    });
  });
  cleanup.push('DAG processor', () => processor.stop());
  await processor.start();
  await firstPass;
  return processor;
}

export function createNotifier(runtime: Runtime, channels: readonly Channel[]): Notifier {
  return new Notifier({ url: runtime.database.url, channels, logger: runtime.logger.child({ component: 'notifier' }) });
}

/** Checks an executor name before anything starts, so a typo fails fast and writes nothing. */
export function executorName(name: string): (typeof EXECUTORS)[number] {
  const known = EXECUTORS.find((e) => e === name);
  if (!known) throw new UsageError(`unknown executor '${name}': choose one of ${EXECUTORS.join(', ')} (--executor or TSFLOW_EXECUTOR)`);
  return known;
}

/**
 * The executor named by `--executor` / `TSFLOW_EXECUTOR`: `local` (worker processes, up to
 * `parallelism` at once), `sequential` (one task at a time, in this process) or `graphile`
 * (graphile-worker jobs taken by `tsflow worker`s, up to `parallelism` in flight).
 */
export function createExecutor(runtime: Runtime, source: DagBag | string, name: string, parallelism: number): BaseExecutor {
  const folder = typeof source === 'string' ? source : source.folder;
  // The sequential executor runs tasks in this process: from the given bag, else each task's DAG
  // file is imported here when its first task runs (its stamp checked, as a warm worker does).
  const dagOf = async (dagId: string): Promise<Dag> => {
    if (typeof source !== 'string') return source.getDag(dagId);
    const row = await runtime.database.db.selectFrom('dag').select('fileloc').where('dag_id', '=', dagId).executeTakeFirst();
    return loadDag(runtime.database.db, folder, dagId, await fileStamp(row?.fileloc));
  };
  const { settings } = runtime;
  switch (executorName(name)) {
    case 'local':
      return createLocalExecutor(runtime, folder, parallelism);
    case 'graphile':
      return new GraphileExecutor({ parallelism, database: runtime.database, logger: runtime.logger });
    case 'sequential':
      return new SequentialExecutor({
        logger: runtime.logger,
        runTask: async (key, signal, onState) =>
          runTaskInstance(
            {
              db: runtime.database.db,
              logger: runtime.logger.child({ component: 'task' }),
              hostname: settings.hostname,
              pid: process.pid,
              defaults: { deferrable: settings.defaultDeferrable },
              logsFolder: settings.logsFolder,
              onState,
            },
            await dagOf(key.dagId),
            key,
            { signal },
          ),
      });
  }
}

/** The LocalExecutor's pool of warm task processes (`local`, and each `tsflow worker`'s). */
export function createLocalExecutor(runtime: Runtime, folder: string, parallelism: number): LocalExecutor {
  const { settings } = runtime;
  return new LocalExecutor({
    parallelism,
    logger: runtime.logger,
    worker: {
      databaseUrl: runtime.database.url,
      dagsFolder: folder,
      logsFolder: settings.logsFolder,
      logLevel: runtime.logger.level as LogLevel,
      defaultDeferrable: settings.defaultDeferrable,
      hostname: settings.hostname,
      secretKeys: keyringSecret(),
    },
  });
}

export async function createTriggerer(
  runtime: Runtime,
  notifier: Notifier,
  options: TriggererOptions,
  triggersFolders: readonly string[],
  metrics?: Metrics,
): Promise<Triggerer> {
  const registry = await TriggerRegistry.create({ folders: triggersFolders, logger: runtime.logger });
  return new Triggerer({ database: runtime.database, registry, logger: runtime.logger, notifier, metrics }, options);
}

export const ALL_CHANNELS: readonly Channel[] = [Channels.trigger, Channels.ti, Channels.dag, Channels.event];

/** Prints one line per task instance state change (standalone and `dags trigger --wait`). */
export function printState(key: TaskInstanceKey, state: string, tryNumber?: number): void {
  const time = DateTime.now().toFormat('HH:mm:ss.SSS');
  const task = `${key.dagId}.${key.taskId}${key.mapIndex !== undefined && key.mapIndex >= 0 ? `[${key.mapIndex}]` : ''}`.padEnd(36);
  const suffix = tryNumber !== undefined && state === 'running' ? ` (try ${tryNumber})` : '';
  console.log(`${time}  ${task} ${state}${suffix}`);
}

/** Resolves with a run's final state, as the scheduler reports it (`standalone --run`, `dags test`). */
export function runFinished(scheduler: Scheduler, dagId: string, runId: string): Promise<'success' | 'failed'> {
  return new Promise((resolve) => {
    const off = scheduler.on('run:state', (run) => {
      if (run.dagId === dagId && run.runId === runId && (run.state === 'success' || run.state === 'failed')) {
        off();
        resolve(run.state);
      }
    });
  });
}
