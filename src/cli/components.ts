import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import type { LogLevel } from '../common/logger.ts';
import type { Metrics } from '../common/metrics.ts';
import { DagBag } from '../dag-bag/dag-bag.ts';
import { upsertDags } from '../db/dag-runs.ts';
import { Notifier } from '../db/notifier.ts';
import { Channels, type Channel } from '../db/protocol.ts';
import type { TaskInstanceKey } from '../db/schema.ts';
import type { BaseExecutor } from '../executors/base-executor.ts';
import { LocalExecutor } from '../executors/local-executor.ts';
import { SequentialExecutor } from '../executors/sequential-executor.ts';
import { runTaskInstance } from '../runner/task-runner.ts';
import { Scheduler, type SchedulerOptions } from '../scheduler/scheduler.ts';
import { TriggerRegistry } from '../triggerer/trigger-registry.ts';
import { Triggerer } from '../triggerer/triggerer.ts';
import type { TriggererOptions } from '../triggerer/triggerer-options.ts';
import type { Runtime } from './runtime.ts';
import { UsageError } from './settings.ts';

export const EXECUTORS = ['local', 'sequential'] as const;

/** Loads the DAG folder and records its DAGs in the `dag` table. */
export async function loadDagBag(runtime: Runtime, folder: string): Promise<DagBag> {
  const bag = await DagBag.load(folder);
  for (const [file, error] of bag.importErrors) {
    runtime.logger.error({ file, err: error }, `DAG file failed to import: ${path.relative(process.cwd(), file)}`);
  }
  await upsertDags(runtime.database.db, [...bag.dags.values()].map((d) => ({ dagId: d.dagId, fileloc: d.fileloc ?? '', description: d.description })));
  return bag;
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
 * `parallelism` at once) or `sequential` (one task at a time, in this process).
 */
export function createExecutor(runtime: Runtime, bag: DagBag, name: string, parallelism: number): BaseExecutor {
  const { settings } = runtime;
  switch (executorName(name)) {
    case 'local':
      return new LocalExecutor({
        parallelism,
        logger: runtime.logger,
        worker: {
          databaseUrl: runtime.database.url,
          dagsFolder: bag.folder,
          logsFolder: settings.logsFolder,
          logLevel: runtime.logger.level as LogLevel,
          defaultDeferrable: settings.defaultDeferrable,
        },
      });
    case 'sequential':
      return new SequentialExecutor({
        logger: runtime.logger,
        runTask: (key, signal, onState) =>
          runTaskInstance(
            {
              db: runtime.database.db,
              logger: runtime.logger.child({ component: 'task' }),
              hostname: os.hostname(),
              pid: process.pid,
              defaults: { deferrable: settings.defaultDeferrable },
              logsFolder: settings.logsFolder,
              onState,
            },
            bag.getDag(key.dagId),
            key,
            { signal },
          ),
      });
  }
}

export function createScheduler(runtime: Runtime, bag: DagBag, executor: BaseExecutor, notifier: Notifier, options: SchedulerOptions = {}): Scheduler {
  return new Scheduler({ database: runtime.database, dagBag: bag, executor, logger: runtime.logger, notifier }, options);
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

export const ALL_CHANNELS: readonly Channel[] = [Channels.trigger, Channels.ti, Channels.dag];

/** Prints one line per task instance state change (standalone and `dags trigger --wait`). */
export function printState(key: TaskInstanceKey, state: string, tryNumber?: number): void {
  const time = DateTime.now().toFormat('HH:mm:ss.SSS');
  const task = `${key.dagId}.${key.taskId}`.padEnd(36);
  const suffix = tryNumber !== undefined && state === 'running' ? ` (try ${tryNumber})` : '';
  console.log(`${time}  ${task} ${state}${suffix}`);
}
