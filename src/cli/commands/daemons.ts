import path from 'node:path';
import { DateTime } from 'luxon';
import { CleanupStack } from '../../common/cleanup-stack.ts';
import { createDagRun } from '../../db/dag-runs.ts';
import { redactUrl } from '../../db/database.ts';
import { Channels } from '../../db/protocol.ts';
import type { Scheduler } from '../../scheduler/scheduler.ts';
import { parse } from '../args.ts';
import {
  ALL_CHANNELS,
  createExecutor,
  executorName,
  createNotifier,
  createScheduler,
  createTriggerer,
  loadDagBag,
  printState,
  startMetricsServer,
} from '../components.ts';
import { openRuntime } from '../runtime.ts';
import { parseConf } from '../json-arg.ts';
import { parseCount, parseSeconds, UsageError, type Settings } from '../settings.ts';
import { shutdownSignal } from '../signals.ts';

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

const commonOptions = {
  'dags-folder': { type: 'string' },
  'triggers-folder': { type: 'string', multiple: true },
  executor: { type: 'string' },
  parallelism: { type: 'string' },
} as const;

function folders(settings: Settings, values: { 'dags-folder'?: string; 'triggers-folder'?: string[] }) {
  return {
    dagsFolder: values['dags-folder'] ? path.resolve(values['dags-folder']) : settings.dagsFolder,
    triggersFolders: values['triggers-folder'] ? values['triggers-folder'].map((f) => path.resolve(f)) : settings.triggersFolders,
  };
}

/** `tsflow standalone`: scheduler, executor and triggerer in one process; with `--run`, one run then exit. */
export async function standaloneCommand(argv: string[], settings: Settings): Promise<number> {
  const usage =
    'tsflow standalone [--dags-folder DIR] [--triggers-folder DIR] [--executor local|sequential] [--parallelism N] [--run DAG_ID [--run-id ID] [--conf JSON]]';
  const { values } = parse(argv, { ...commonOptions, run: { type: 'string' }, 'run-id': { type: 'string' }, conf: { type: 'string' } }, usage);
  const { dagsFolder, triggersFolders } = folders(settings, values);
  const conf = parseConf(values.conf);
  const parallelism = parseCount(values.parallelism, '--parallelism', settings.parallelism, 0);
  const executor = executorName(values.executor ?? settings.executor);
  if ((values['run-id'] || values.conf) && !values.run) throw new UsageError(`--run-id and --conf need --run DAG_ID\nusage: ${usage}`);

  const runtime = await openRuntime(settings, { migrate: true, defaultLogLevel: 'warn', applicationName: 'tsflow-standalone', keepOpen: SCHEDULER_CONNECTIONS + TRIGGERER_CONNECTIONS });
  const shutdown = shutdownSignal({ forceAfterMs: SHUTDOWN_TIMEOUT_MS, onForce: (why) => console.error(`tsflow: ${why}`) });
  const cleanup = new CleanupStack();
  cleanup.push('database', () => runtime.close());
  cleanup.push('signals', () => shutdown.dispose());
  try {
    const bag = await loadDagBag(runtime, dagsFolder);
    if (values.run) bag.getDag(values.run);
    const notifier = createNotifier(runtime, ALL_CHANNELS);
    await notifier.start();
    cleanup.push('notifier', () => notifier.stop());
    const scheduler = createScheduler(runtime, bag, createExecutor(runtime, bag, executor, parallelism), notifier);
    const triggerer = await createTriggerer(runtime, notifier, {}, triggersFolders);
    scheduler.on('ti:state', ({ key, state, tryNumber }) => printState(key, state, tryNumber));
    triggerer.on('trigger:fired', ({ task, result }) => task && result === 'applied' && printState(task, 'scheduled (trigger fired)'));
    triggerer.on('trigger:failed', ({ task, result, error }) => task && result === 'applied' && printState(task, `scheduled (trigger failed: ${error})`));
    await scheduler.start();
    cleanup.push('scheduler', () => scheduler.stop());
    await triggerer.start();
    cleanup.push('triggerer', () => triggerer.stop());
    console.log(`tsflow standalone: ${bag.dags.size} DAG(s) from ${dagsFolder}; database ${redactUrl(runtime.database.url)}`);

    if (!values.run) {
      const signal = await shutdown.received;
      console.log(`tsflow standalone: ${signal} received, shutting down`);
      return 0;
    }
    const dagId = values.run;
    const runId = values['run-id'] ?? `manual__${DateTime.utc().toISO()}`;
    const finished = runFinished(scheduler, dagId, runId);
    await createDagRun(runtime.database.db, { dagId, runId, conf, logicalDate: new Date() });
    console.log(`tsflow standalone: triggered ${dagId} run '${runId}'`);
    const outcome = await Promise.race([finished, shutdown.received.then(() => 'interrupted' as const)]);
    console.log(`tsflow standalone: run '${runId}' of ${dagId} ${outcome === 'interrupted' ? 'interrupted' : `finished: ${outcome}`}`);
    return outcome === 'success' ? 0 : 1;
  } finally {
    await cleanup.runAll();
  }
}

function runFinished(scheduler: Scheduler, dagId: string, runId: string): Promise<'success' | 'failed'> {
  return new Promise((resolve) => {
    const off = scheduler.on('run:state', (run) => {
      if (run.dagId === dagId && run.runId === runId && (run.state === 'success' || run.state === 'failed')) {
        off();
        resolve(run.state);
      }
    });
  });
}

/** `tsflow scheduler`. */
export async function schedulerCommand(argv: string[], settings: Settings): Promise<number> {
  const usage = 'tsflow scheduler [--dags-folder DIR] [--executor local|sequential] [--parallelism N]';
  const { values } = parse(argv, commonOptions, usage);
  const { dagsFolder } = folders(settings, values);
  const parallelism = parseCount(values.parallelism, '--parallelism', settings.parallelism, 0);
  const executor = executorName(values.executor ?? settings.executor);
  const runtime = await openRuntime(settings, { applicationName: 'tsflow-scheduler', keepOpen: SCHEDULER_CONNECTIONS });
  const shutdown = shutdownSignal({ forceAfterMs: SHUTDOWN_TIMEOUT_MS, onForce: (why) => runtime.logger.error(why) });
  const cleanup = new CleanupStack();
  cleanup.push('database', () => runtime.close());
  cleanup.push('signals', () => shutdown.dispose());
  try {
    const bag = await loadDagBag(runtime, dagsFolder);
    const notifier = createNotifier(runtime, ALL_CHANNELS);
    await notifier.start();
    cleanup.push('notifier', () => notifier.stop());
    const scheduler = createScheduler(runtime, bag, createExecutor(runtime, bag, executor, parallelism), notifier);
    await scheduler.start();
    cleanup.push('scheduler', () => scheduler.stop());
    const signal = await shutdown.received;
    runtime.logger.info({ signal }, 'shutting down');
    return 0;
  } finally {
    await cleanup.runAll();
  }
}

/** `tsflow triggerer`. */
export async function triggererCommand(argv: string[], settings: Settings): Promise<number> {
  const usage =
    'tsflow triggerer [--capacity N] [--heartbeat-interval S] [--health-check-threshold S] [--poll-interval S] ' +
    '[--blocked-threshold S] [--shutdown-timeout S] [--triggers-folder DIR]... [--metrics-port P] [--metrics-host H]';
  const { values } = parse(
    argv,
    {
      'triggers-folder': { type: 'string', multiple: true },
      capacity: { type: 'string' },
      'heartbeat-interval': { type: 'string' },
      'health-check-threshold': { type: 'string' },
      'poll-interval': { type: 'string' },
      'blocked-threshold': { type: 'string' },
      'shutdown-timeout': { type: 'string' },
      'metrics-port': { type: 'string' },
      'metrics-host': { type: 'string' },
    },
    usage,
  );
  const options = {
    capacity: parseCount(values.capacity, '--capacity', 1000),
    heartbeatIntervalMs: parseSeconds(values['heartbeat-interval'], '--heartbeat-interval', 5000),
    healthCheckThresholdMs: parseSeconds(values['health-check-threshold'], '--health-check-threshold', 30_000),
    pollIntervalMs: parseSeconds(values['poll-interval'], '--poll-interval', 10_000),
    blockedThresholdMs: parseSeconds(values['blocked-threshold'], '--blocked-threshold', 200),
    shutdownTimeoutMs: parseSeconds(values['shutdown-timeout'], '--shutdown-timeout', 10_000),
  };
  const metricsPort = values['metrics-port'] === undefined ? undefined : parseCount(values['metrics-port'], '--metrics-port', 0, 0);
  const triggersFolders = values['triggers-folder'] ? values['triggers-folder'].map((f) => path.resolve(f)) : settings.triggersFolders;
  const runtime = await openRuntime(settings, { applicationName: 'tsflow-triggerer', keepOpen: TRIGGERER_CONNECTIONS });
  const shutdown = shutdownSignal({ forceAfterMs: options.shutdownTimeoutMs + 5000, onForce: (why) => runtime.logger.error(why) });
  const cleanup = new CleanupStack();
  cleanup.push('database', () => runtime.close());
  cleanup.push('signals', () => shutdown.dispose());
  try {
    const notifier = createNotifier(runtime, [Channels.trigger]);
    await notifier.start();
    cleanup.push('notifier', () => notifier.stop());
    const triggerer = await createTriggerer(runtime, notifier, options, triggersFolders);
    await triggerer.start();
    cleanup.push('triggerer', () => triggerer.stop());
    if (metricsPort !== undefined) {
      const server = await startMetricsServer(triggerer, metricsPort, values['metrics-host'] ?? '127.0.0.1');
      cleanup.push('metrics server', () => server.close());
    }
    const signal = await shutdown.received;
    runtime.logger.info({ signal }, 'shutting down: releasing triggers');
    return 0;
  } finally {
    await cleanup.runAll();
  }
}
