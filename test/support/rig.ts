import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/common/logger.ts';
import { DagBag } from '../../src/dag-bag/dag-bag.ts';
import type { Database } from '../../src/db/database.ts';
import { createDagRun, upsertDags } from '../../src/db/dag-runs.ts';
import { Notifier } from '../../src/db/notifier.ts';
import { Channels } from '../../src/db/protocol.ts';
import type { TaskInstanceKey } from '../../src/db/schema.ts';
import { startQueuedRun } from '../../src/db/scheduling.ts';
import type { BaseExecutor } from '../../src/executors/base-executor.ts';
import { LocalExecutor, type LocalExecutorOptions } from '../../src/executors/local-executor.ts';
import { SequentialExecutor } from '../../src/executors/sequential-executor.ts';
import type { WorkerConfig } from '../../src/executors/worker-protocol.ts';
import { runTaskInstance, type TaskRunResult } from '../../src/runner/task-runner.ts';
import { Scheduler, type SchedulerOptions } from '../../src/scheduler/scheduler.ts';
import type { TaskRuntimeDefaults } from '../../src/sdk/context.ts';
import type { Dag } from '../../src/sdk/dag.ts';
import type { JsonObject } from '../../src/sdk/json.ts';
import { TriggerRegistry } from '../../src/triggerer/trigger-registry.ts';
import { Triggerer } from '../../src/triggerer/triggerer.ts';
import type { TriggererOptions } from '../../src/triggerer/triggerer-options.ts';
import { track } from './daemons.ts';
import { waitForEvent } from './events.ts';

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
export const FIXTURE_DAGS = path.join(FIXTURES, 'dags');
export const FIXTURE_TRIGGERS = path.join(FIXTURES, 'triggers');

export function loadFixtureDags(): Promise<DagBag> {
  return DagBag.load(FIXTURE_DAGS);
}

/** Creates a running DAG run with its task instances (no scheduler needed); returns the run id. */
export async function createRun(db: Database, dag: Dag, runId: string, conf: JsonObject = {}): Promise<string> {
  await upsertDags(db.db, [{ dagId: dag.dagId, fileloc: dag.fileloc ?? '' }]);
  await createDagRun(db.db, { dagId: dag.dagId, runId, conf, logicalDate: new Date() });
  const specs = [...dag.tasks.values()].map((t) => ({ taskId: t.taskId, maxTries: t.settings.retries, priorityWeight: t.settings.priorityWeight, queue: 'default', pool: t.settings.pool, poolSlots: t.settings.poolSlots }));
  await startQueuedRun(db.db, dag.dagId, runId, specs, { checkLimits: false });
  return runId;
}

/** Marks a task instance queued, as the scheduler would before handing it to an executor. */
export async function queue(db: Database, key: TaskInstanceKey): Promise<void> {
  await db.db
    .updateTable('task_instance')
    .set({ state: 'queued' })
    .where('dag_id', '=', key.dagId)
    .where('run_id', '=', key.runId)
    .where('task_id', '=', key.taskId)
    .execute();
}

/** Runs a task instance in this process, as `tsflow tasks run` does. */
export function runTask(db: Database, dag: Dag, key: TaskInstanceKey): Promise<TaskRunResult> {
  return runTaskInstance({ db: db.db, logger: silentLogger(), hostname: 'test', pid: process.pid, defaults: { deferrable: false } }, dag, key);
}

export async function startNotifier(db: Database): Promise<Notifier> {
  const notifier = track(new Notifier({ url: db.url, channels: [Channels.trigger, Channels.ti, Channels.dag, Channels.event], logger: silentLogger() }));
  await notifier.start();
  return notifier;
}

export async function startTriggerer(
  db: Database,
  options: TriggererOptions & { notifier?: Notifier | null } = {},
): Promise<Triggerer> {
  const { notifier, ...triggererOptions } = options;
  const registry = await TriggerRegistry.create({ folders: [FIXTURE_TRIGGERS], logger: silentLogger() });
  const triggerer = track(
    new Triggerer(
      { database: db, registry, logger: silentLogger(), notifier: notifier === null ? undefined : (notifier ?? (await startNotifier(db))) },
      { heartbeatIntervalMs: 1000, healthCheckThresholdMs: 5000, pollIntervalMs: 2000, ...triggererOptions },
    ),
  );
  await triggerer.start();
  return triggerer;
}

/** The SequentialExecutor the way `tsflow scheduler --executor sequential` builds it, on a test database. */
export function sequentialExecutor(db: Database, bag: DagBag, defaults: TaskRuntimeDefaults = { deferrable: false }): SequentialExecutor {
  return new SequentialExecutor({
    logger: silentLogger(),
    runTask: (key, signal, onState) =>
      runTaskInstance({ db: db.db, logger: silentLogger(), hostname: 'test', pid: process.pid, defaults, onState }, bag.getDag(key.dagId), key, { signal }),
  });
}

/**
 * A LocalExecutor whose workers run the fixture DAGs on a test database. Tracked: a test that leaves
 * it (and so its worker processes) running fails. Worker logs are silent unless TSFLOW_TEST_LOG_LEVEL.
 */
export function localExecutor(
  db: Database,
  options: Partial<Omit<LocalExecutorOptions, 'worker'>> & { worker?: Partial<WorkerConfig> } = {},
): LocalExecutor {
  const { worker, ...rest } = options;
  const executor = new LocalExecutor({
    parallelism: 4,
    logger: silentLogger(),
    ...rest,
    worker: {
      databaseUrl: db.url,
      dagsFolder: FIXTURE_DAGS,
      logLevel: (process.env['TSFLOW_TEST_LOG_LEVEL'] as WorkerConfig['logLevel'] | undefined) ?? 'silent',
      defaultDeferrable: false,
      ...worker,
    },
  });
  track(
    {
      get state() {
        return executor.state === 'ended' ? 'stopped' : executor.state;
      },
      stop: () => executor.terminate(),
    },
    'LocalExecutor',
  );
  return executor;
}

/** A scheduler with the given executor (by default a one-slot SequentialExecutor); `defaults` is what TSFLOW_DEFAULT_DEFERRABLE would set. */
export async function startScheduler(
  db: Database,
  bag: DagBag,
  options: SchedulerOptions & { defaults?: TaskRuntimeDefaults } = {},
  given?: BaseExecutor,
): Promise<{ scheduler: Scheduler; executor: BaseExecutor }> {
  const { defaults = { deferrable: false }, ...schedulerOptions } = options;
  const executor = given ?? sequentialExecutor(db, bag, defaults);
  const scheduler = track(new Scheduler({ database: db, dagBag: bag, executor, logger: silentLogger(), notifier: await startNotifier(db) }, schedulerOptions));
  await scheduler.start();
  return { scheduler, executor };
}

export async function taskInstance(db: Database, key: TaskInstanceKey) {
  return db.db
    .selectFrom('task_instance')
    .selectAll()
    .where('dag_id', '=', key.dagId)
    .where('run_id', '=', key.runId)
    .where('task_id', '=', key.taskId)
    .executeTakeFirstOrThrow();
}

/** Resolves when the run reaches a final state (success or failed). */
export function runEnded(scheduler: Scheduler, runId: string, timeoutMs = 20_000) {
  return waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.state !== 'running', timeoutMs);
}
