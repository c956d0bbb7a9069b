import { listWorkers } from '../../db/workers.ts';
import { isJobReleaseFailure } from '../../graphile/job-release.ts';
import { RemoteWorker } from '../../worker/remote-worker.ts';
import { compileRemoteWorkerOptions, type CompiledRemoteWorkerOptions, type RemoteWorkerOptions } from '../../worker/remote-worker-options.ts';
import { DAGS_FOLDER, dagsFolderOf, JSON_OUTPUT, STARTUP_TIMEOUT } from '../common-options.ts';
import { createLocalExecutor } from '../components.ts';
import { startDaemon } from '../daemon-startup.ts';
import { withRuntime } from '../runtime.ts';
import { parseCount, parseSeconds, UsageError, type Settings } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/** Database connections the worker keeps: heartbeat and claims (graphile-worker has its own pool). */
const WORKER_CONNECTIONS = 2;

/**
 * `tsflow worker`: Airflow's `celery worker`, on graphile-worker. The first SIGTERM/SIGINT drains
 * (no new jobs; running tasks get --shutdown-timeout, then are stopped for a retry); a second one,
 * or the drain overrunning by 10 s more, exits at once.
 */
export const workerCommand = defineCommand(
  {
    name: 'worker',
    summary: 'takes the task instances of its queues (graphile executor) and runs them in warm task processes; run one per machine',
    options: {
      queues: { type: 'string', value: 'Q1,Q2', description: 'the queues it takes tasks from (a task\'s `queue`)', default: 'default' },
      concurrency: { type: 'string', value: 'N', description: 'task instances running at once', default: '16' },
      'shutdown-timeout': { type: 'string', value: 'S', description: 'on SIGTERM, how long running tasks may finish before they are stopped and retried', default: '60' },
      'heartbeat-interval': { type: 'string', value: 'S', description: 'seconds between heartbeats of its job row', default: '5' },
      'poll-interval': { type: 'string', value: 'S', description: 'seconds between looks for jobs when no NOTIFY arrives (the safety net)', default: '2' },
      'dags-folder': DAGS_FOLDER,
      'startup-timeout': STARTUP_TIMEOUT,
    },
    details: [
      'Needs the DAG files and TSFLOW_DATABASE_URL (the schedulers run with --executor graphile). TSFLOW_HOSTNAME names the host',
      'in its job row and in the tries it runs. Refuses a database without graphile-worker\'s schema (run tsflow db migrate).',
    ],
  },
  async ({ values }, settings) => {
    const dagsFolder = dagsFolderOf(settings, values['dags-folder']);
    const options: RemoteWorkerOptions = {
      queues: (values.queues ?? 'default').split(',').map((q) => q.trim()).filter(Boolean),
      concurrency: parseCount(values.concurrency, '--concurrency', 16, 1),
      shutdownTimeoutMs: parseSeconds(values['shutdown-timeout'], '--shutdown-timeout', 60_000),
      heartbeatIntervalMs: parseSeconds(values['heartbeat-interval'], '--heartbeat-interval', 5000),
      pollIntervalMs: parseSeconds(values['poll-interval'], '--poll-interval', 2000),
    };
    let compiled;
    try {
      compiled = compileRemoteWorkerOptions(options);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    // graphile-worker's unawaited job release failing (the server going away as a job ends) is the one
    // unhandled rejection this process outlives (src/graphile/job-release.ts); any other ends it, as
    // Node would without this listener.
    let current: RemoteWorker | undefined;
    const onUnhandledRejection = (reason: unknown): void => {
      if (current && isJobReleaseFailure(reason)) {
        current.jobReleaseFailed(reason);
        return;
      }
      process.nextTick(() => {
        throw reason instanceof Error ? reason : new Error(`unhandled rejection: ${String(reason)}`);
      });
    };
    process.on('unhandledRejection', onUnhandledRejection);
    try {
      return await runWorker(settings, values, dagsFolder, compiled, (worker) => (current = worker));
    } finally {
      process.off('unhandledRejection', onUnhandledRejection);
    }
  },
);

/** Starts the worker (telling `onWorker` each one built: a start-up retried after a lost connection builds another), runs it until a signal, drains it. */
async function runWorker(
  settings: Settings,
  values: { 'startup-timeout'?: string | undefined },
  dagsFolder: string,
  compiled: CompiledRemoteWorkerOptions,
  onWorker: (worker: RemoteWorker) => void,
): Promise<number> {
  const started = await startDaemon({
    settings,
    startupTimeout: values['startup-timeout'],
    runtime: { applicationName: 'tsflow-worker', keepOpen: WORKER_CONNECTIONS },
    shutdownTimeoutMs: compiled.shutdownTimeoutMs + 10_000,
    start: async (runtime, cleanup) => {
      const executor = createLocalExecutor(runtime, dagsFolder, compiled.concurrency);
      const worker = new RemoteWorker({ database: runtime.database, executor, logger: runtime.logger, hostname: settings.hostname }, compiled);
      onWorker(worker);
      cleanup.push('worker', () => worker.stop());
      await worker.start();
      return worker;
    },
  });
  if (!started) return 0;
  try {
    const signal = await started.received;
    started.runtime.logger.info({ signal, shutdownTimeoutMs: compiled.shutdownTimeoutMs }, 'shutting down: letting running tasks finish');
    return 0;
  } finally {
    await started.close();
  }
}

/** `tsflow workers list [--json]`: what Celery's Flower shows. */
export const workersList = defineCommand(
  {
    name: 'workers list',
    summary: 'every tsflow worker (running, or ended in the last hour): host, queues, concurrency, running tasks, heartbeat age',
    options: {
      json: JSON_OUTPUT,
      threshold: { type: 'string', value: 'S', description: 'a worker is alive if it heartbeat within S seconds', default: '30' },
    },
  },
  async ({ values }, settings) => {
    const thresholdMs = parseSeconds(values.threshold, '--threshold', 30_000);
    return withRuntime(settings, {}, async (runtime) => {
      const workers = await listWorkers(runtime.database.db, thresholdMs);
      if (values.json) {
        console.log(JSON.stringify(workers));
        return 0;
      }
      if (workers.length === 0) console.log('no workers');
      for (const w of workers) {
        const state = w.state !== 'running' ? w.state : w.alive ? 'alive' : 'unresponsive';
        console.log(
          `${String(w.jobId).padStart(6)}  ${w.hostname} (pid ${w.pid})  queues ${w.queues.join(',')}  ` +
            `running ${w.runningTasks}/${w.concurrency ?? '?'}  heartbeat ${w.heartbeatAgeSeconds}s ago  ${state}`,
        );
      }
      return 0;
    });
  },
);
