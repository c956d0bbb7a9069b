import { DateTime } from 'luxon';
import { CleanupStack } from '../../common/cleanup-stack.ts';
import { Metrics } from '../../common/metrics.ts';
import { MetricsServer } from '../../common/metrics-server.ts';
import { createDagRun } from '../../db/dag-runs.ts';
import { redactUrl } from '../../db/database.ts';
import { Channels } from '../../db/protocol.ts';
import { compileSchedulerOptions, type SchedulerOptions } from '../../scheduler/scheduler-options.ts';
import { DAGS_FOLDER, dagsFolderOf, STARTUP_TIMEOUT, TRIGGERS_FOLDER, triggersFoldersOf } from '../common-options.ts';
import {
  ALL_CHANNELS,
  createCliScheduler,
  createExecutor,
  executorName,
  createNotifier,
  createTriggerer,
  printState,
  runFinished,
  startEmbeddedDagProcessor,
} from '../components.ts';
import { activeDagsIn, manualRunOf, requireActiveDag } from '../active-dags.ts';
import { API_HOST, startApiServerIn } from './api-server.ts';
import { DAG_PROCESSOR_OPTIONS, dagProcessorOptions } from './dag-processor.ts';
import { startDaemon } from '../daemon-startup.ts';
import { parseConf } from '../json-arg.ts';
import { parseCount, parsePort, parseSeconds, UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

const SHUTDOWN_TIMEOUT_MS = 30_000;

/**
 * Connections a daemon opens at start and keeps however long it is idle: those its work uses at
 * the same moment. pg closes idle ones after 10 s, so a triggerer quiet for a while met a burst of
 * events by forking backends for its two event writers, its claim loop and its heartbeat (which
 * the timeout sweep shares), on the cores the burst needed.
 */
const TRIGGERER_CONNECTIONS = 4;
/** The scheduling loop, the heartbeat and the timeout sweep. */
const SCHEDULER_CONNECTIONS = 3;

const NO_DAG_PROCESSOR = {
  type: 'boolean',
  description: 'do not run a DAG processor inside: another process (tsflow dag-processor) keeps the serialized DAGs current',
} as const;

const executorOptions = {
  executor: { type: 'string', value: 'NAME', description: 'local (worker processes), sequential (one task at a time, in this process) or graphile (a tsflow worker on any machine takes each task)', default: 'TSFLOW_EXECUTOR, else local' },
  parallelism: { type: 'string', value: 'N', description: 'most task instances running at once; 0 = unlimited', default: 'TSFLOW_PARALLELISM, else 32' },
} as const;

/** `tsflow standalone`: scheduler, executor and triggerer in one process; with `--run`, one run then exit. */
export const standaloneCommand = defineCommand(
  {
    name: 'standalone',
    summary: 'scheduler + executor + triggerer in one process (dev and demo); migrates the database first',
    options: {
      run: { type: 'string', value: 'DAG_ID', description: 'trigger one run of this DAG, print its task states, and exit when it ends (0 if it succeeded)' },
      'run-id': { type: 'string', value: 'ID', description: "with --run: the run's id", default: 'manual__<current UTC time>' },
      conf: { type: 'string', value: 'JSON', description: 'with --run: a JSON object the tasks see as context.conf', default: '{}' },
      'dags-folder': DAGS_FOLDER,
      'triggers-folder': TRIGGERS_FOLDER,
      ...executorOptions,
      'no-dag-processor': NO_DAG_PROCESSOR,
      ...DAG_PROCESSOR_OPTIONS,
      'api-port': { type: 'string', value: 'P', description: 'the API server\'s port', default: '8080' },
      'api-host': API_HOST,
      'no-api-server': { type: 'boolean', description: 'do not start the API server' },
      'startup-timeout': STARTUP_TIMEOUT,
    },
    details: [
      'Without TSFLOW_DATABASE_URL it runs on the embedded PostgreSQL under TSFLOW_HOME. Logs at warn unless TSFLOW_LOG_LEVEL says otherwise.',
      'A DAG processor runs inside (its first pass is written before anything is scheduled) unless --no-dag-processor.',
      'The API server runs inside too (its URL is printed), unless --no-api-server; with --run only when --api-port is given.',
      'On the default port, a port in use is a warning; on a port given with --api-port, an error.',
    ],
  },
  async ({ values }, settings) => {
    const dagsFolder = dagsFolderOf(settings, values['dags-folder']);
    const triggersFolders = triggersFoldersOf(settings, values['triggers-folder']);
    const conf = parseConf(values.conf);
    const parallelism = parseCount(values.parallelism, '--parallelism', settings.parallelism, 0);
    const executor = executorName(values.executor ?? settings.executor);
    const processorOptions = dagProcessorOptions(values);
    if ((values['run-id'] || values.conf) && !values.run) throw new UsageError('--run-id and --conf need --run DAG_ID');
    const api = values['no-api-server'] || (values.run && values['api-port'] === undefined)
      ? undefined
      : { host: values['api-host'] ?? '127.0.0.1', port: values['api-port'] === undefined ? 8080 : parsePort(values['api-port'], '--api-port'), required: values['api-port'] !== undefined };

    const started = await startDaemon({
      settings,
      startupTimeout: values['startup-timeout'],
      runtime: { migrate: true, defaultLogLevel: 'warn', applicationName: 'tsflow-standalone', keepOpen: SCHEDULER_CONNECTIONS + TRIGGERER_CONNECTIONS },
      shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
      start: async (runtime, cleanup) => {
        const notifier = createNotifier(runtime, ALL_CHANNELS);
        await notifier.start();
        cleanup.push('notifier', () => notifier.stop());
        if (!values['no-dag-processor']) await startEmbeddedDagProcessor(runtime, dagsFolder, notifier, cleanup, processorOptions);
        if (values.run) await requireActiveDag(runtime.database.db, dagsFolder, values.run);
        const scheduler = createCliScheduler(runtime, dagsFolder, createExecutor(runtime, dagsFolder, executor, parallelism), notifier, cleanup);
        const triggerer = await createTriggerer(runtime, notifier, {}, triggersFolders);
        scheduler.on('ti:state', ({ key, state, tryNumber }) => printState(key, state, tryNumber));
        triggerer.on('trigger:fired', ({ task, result }) => task && result === 'applied' && printState(task, 'scheduled (trigger fired)'));
        triggerer.on('trigger:failed', ({ task, result, error }) => task && result === 'applied' && printState(task, `scheduled (trigger failed: ${error})`));
        cleanup.push('scheduler', () => scheduler.stop());
        await scheduler.start();
        cleanup.push('triggerer', () => triggerer.stop());
        await triggerer.start();
        const apiUrl = api ? await startApiServerIn(runtime, cleanup, api) : undefined;
        return { scheduler, apiUrl, dagCount: (await activeDagsIn(runtime.database.db, dagsFolder)).length };
      },
    });
    if (!started) return 0;
    const { runtime, received, value: { dagCount, scheduler, apiUrl } } = started;
    try {
      console.log(`tsflow standalone: ${dagCount} DAG(s) from ${dagsFolder}; database ${redactUrl(runtime.database.url)}`);
      if (apiUrl) console.log(`tsflow standalone: API server at ${apiUrl}/api/v1, web UI at ${apiUrl}/ui/ (users: tsflow users create)`);
      if (!values.run) {
        const signal = await received;
        console.log(`tsflow standalone: ${signal} received, shutting down`);
        return 0;
      }
      const dagId = values.run;
      const run = await manualRunOf(runtime.database.db, dagId, DateTime.utc(), conf);
      const runId = values['run-id'] ?? run.runId;
      const finished = runFinished(scheduler, dagId, runId);
      await createDagRun(runtime.database.db, { ...run, runId });
      console.log(`tsflow standalone: triggered ${dagId} run '${runId}'`);
      const outcome = await Promise.race([finished, received.then(() => 'interrupted' as const)]);
      console.log(`tsflow standalone: run '${runId}' of ${dagId} ${outcome === 'interrupted' ? 'interrupted' : `finished: ${outcome}`}`);
      return outcome === 'success' ? 0 : 1;
    } finally {
      await started.close();
    }
  },
);


const schedulerOptions = {
  'heartbeat-interval': { type: 'string', value: 'S', description: 'seconds between heartbeats of its job row', default: '5' },
  'health-check-threshold': {
    type: 'string',
    value: 'S',
    description: 'a scheduler silent this long is dead: its queued task instances go back to scheduled',
    default: '30',
  },
  'zombie-threshold': { type: 'string', value: 'S', description: 'a running task instance with no heartbeat this long is a zombie', default: '300' },
  'queued-timeout': { type: 'string', value: 'S', description: 'a task instance queued this long was lost and is tried again', default: '600' },
} as const;

/** The scheduler's timing options, from `tsflow scheduler` / `standalone` flags (seconds). */
function schedulerTimings(values: { 'heartbeat-interval'?: string; 'health-check-threshold'?: string; 'zombie-threshold'?: string; 'queued-timeout'?: string }): SchedulerOptions {
  const options: SchedulerOptions = {
    heartbeatIntervalMs: parseSeconds(values['heartbeat-interval'], '--heartbeat-interval', 5000),
    healthCheckThresholdMs: parseSeconds(values['health-check-threshold'], '--health-check-threshold', 30_000),
    zombieThresholdMs: parseSeconds(values['zombie-threshold'], '--zombie-threshold', 300_000),
    queuedTimeoutMs: parseSeconds(values['queued-timeout'], '--queued-timeout', 600_000),
  };
  try {
    compileSchedulerOptions(options);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return options;
}

/** `tsflow scheduler`. */
export const schedulerCommand = defineCommand(
  {
    name: 'scheduler',
    summary: 'the scheduler loop and its executor; run several for HA',
    options: {
      'dags-folder': DAGS_FOLDER,
      ...executorOptions,
      ...schedulerOptions,
      'no-dag-processor': NO_DAG_PROCESSOR,
      ...DAG_PROCESSOR_OPTIONS,
      'startup-timeout': STARTUP_TIMEOUT,
    },
    details: [
      'Refuses an unmigrated database (run tsflow db migrate). Logs are JSON lines on stderr (TSFLOW_LOG_LEVEL).',
      'It schedules from the serialized DAGs in the database, never importing DAG files itself; a DAG processor',
      'runs inside (in child processes) unless --no-dag-processor.',
    ],
  },
  async ({ values }, settings) => {
    const dagsFolder = dagsFolderOf(settings, values['dags-folder']);
    const parallelism = parseCount(values.parallelism, '--parallelism', settings.parallelism, 0);
    const executor = executorName(values.executor ?? settings.executor);
    const timings = schedulerTimings(values);
    const processorOptions = dagProcessorOptions(values);
    const started = await startDaemon({
      settings,
      startupTimeout: values['startup-timeout'],
      runtime: { applicationName: 'tsflow-scheduler', keepOpen: SCHEDULER_CONNECTIONS },
      shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
      start: async (runtime, cleanup) => {
        const notifier = createNotifier(runtime, ALL_CHANNELS);
        await notifier.start();
        cleanup.push('notifier', () => notifier.stop());
        if (!values['no-dag-processor']) await startEmbeddedDagProcessor(runtime, dagsFolder, notifier, cleanup, processorOptions);
        const scheduler = createCliScheduler(runtime, dagsFolder, createExecutor(runtime, dagsFolder, executor, parallelism), notifier, cleanup, timings);
        cleanup.push('scheduler', () => scheduler.stop());
        await scheduler.start();
      },
    });
    if (!started) return 0;
    try {
      const signal = await started.received;
      started.runtime.logger.info({ signal }, 'shutting down');
      return 0;
    } finally {
      await started.close();
    }
  },
);

/** `tsflow triggerer`. */
export const triggererCommand = defineCommand(
  {
    name: 'triggerer',
    summary: 'the triggerer daemon: runs deferred tasks\' triggers; run several for HA and scale',
    options: {
      capacity: { type: 'string', value: 'N', description: 'most triggers this triggerer owns at once', default: '1000' },
      'heartbeat-interval': { type: 'string', value: 'S', description: 'seconds between heartbeats of its job row', default: '5' },
      'health-check-threshold': { type: 'string', value: 'S', description: "a triggerer silent this long is dead and its triggers are taken over", default: '30' },
      'poll-interval': { type: 'string', value: 'S', description: 'seconds between claims when no NOTIFY arrives (the safety net)', default: '10' },
      'blocked-threshold': { type: 'string', value: 'S', description: 'warn when the event loop is blocked longer than this', default: '0.2' },
      'shutdown-timeout': { type: 'string', value: 'S', description: 'on SIGTERM, exit at once if releasing the triggers takes longer', default: '10' },
      'triggers-folder': TRIGGERS_FOLDER,
      'metrics-port': { type: 'string', value: 'P', description: 'serve Prometheus metrics at http://HOST:P/metrics (1-65535)', default: 'no metrics server' },
      'metrics-host': { type: 'string', value: 'H', description: 'the address the metrics server binds', default: '127.0.0.1' },
      'startup-timeout': STARTUP_TIMEOUT,
    },
    details: ['Times are in seconds, fractions allowed. Refuses an unmigrated database (run tsflow db migrate).'],
  },
  async ({ values }, settings) => {
    const options = {
      capacity: parseCount(values.capacity, '--capacity', 1000),
      heartbeatIntervalMs: parseSeconds(values['heartbeat-interval'], '--heartbeat-interval', 5000),
      healthCheckThresholdMs: parseSeconds(values['health-check-threshold'], '--health-check-threshold', 30_000),
      pollIntervalMs: parseSeconds(values['poll-interval'], '--poll-interval', 10_000),
      blockedThresholdMs: parseSeconds(values['blocked-threshold'], '--blocked-threshold', 200),
      shutdownTimeoutMs: parseSeconds(values['shutdown-timeout'], '--shutdown-timeout', 10_000),
    };
    if (values['metrics-host'] !== undefined && values['metrics-port'] === undefined) throw new UsageError('--metrics-host needs --metrics-port P');
    const metricsPort = values['metrics-port'] === undefined ? undefined : parsePort(values['metrics-port'], '--metrics-port');
    const triggersFolders = triggersFoldersOf(settings, values['triggers-folder']);
    const cleanup = new CleanupStack();
    try {
      // The metrics port is bound before anything else, so a port in use fails before the job row
      // is written or a trigger claimed (and before waiting for the database).
      const metrics = new Metrics();
      if (metricsPort !== undefined) {
        const server = await listenForMetrics(metrics, metricsPort, values['metrics-host'] ?? '127.0.0.1');
        cleanup.push('metrics server', () => server.close());
      }
      const started = await startDaemon({
        settings,
        startupTimeout: values['startup-timeout'],
        runtime: { applicationName: 'tsflow-triggerer', keepOpen: TRIGGERER_CONNECTIONS },
        shutdownTimeoutMs: options.shutdownTimeoutMs + 5000,
        start: async (runtime, daemonCleanup) => {
          // tsflow_ti too: the run watcher wakes on task and run ends (TriggerDagRunOperator, ExternalTaskSensor).
          const notifier = createNotifier(runtime, [Channels.trigger, Channels.ti]);
          await notifier.start();
          daemonCleanup.push('notifier', () => notifier.stop());
          const triggerer = await createTriggerer(runtime, notifier, options, triggersFolders, metrics);
          daemonCleanup.push('triggerer', () => triggerer.stop());
          await triggerer.start();
        },
      });
      if (!started) return 0;
      cleanup.push('daemon', () => started.close());
      const signal = await started.received;
      started.runtime.logger.info({ signal }, 'shutting down: releasing triggers');
      return 0;
    } finally {
      await cleanup.runAll();
    }
  },
);

async function listenForMetrics(metrics: Metrics, port: number, host: string): Promise<MetricsServer> {
  const server = new MetricsServer(metrics);
  try {
    await server.listen(port, host);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const why = code === 'EADDRINUSE' ? 'is already in use' : code === 'EACCES' ? 'needs privileges this process lacks' : `cannot be bound (${(error as Error).message})`;
    throw new MetricsPortError(`--metrics-port ${port} on ${host} ${why}: choose another port, or stop what listens there`, { cause: error });
  }
  return server;
}

export class MetricsPortError extends Error {
  override name = 'MetricsPortError';
}
