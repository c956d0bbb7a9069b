import { CleanupStack } from '../common/cleanup-stack.ts';
import { createLogger } from '../common/logger.ts';
import { sleep } from '../common/sleep.ts';
import { backoffMs } from '../common/wakeup.ts';
import { isRetryableError } from '../db/retry.ts';
import { openRuntime, type Runtime, type RuntimeOptions } from './runtime.ts';
import { parseSeconds, type Settings } from './settings.ts';
import { shutdownSignal } from './signals.ts';
import { StartupCancelledError } from './wait-for-database.ts';

export interface DaemonStartupOptions<T> {
  settings: Settings;
  /** `--startup-timeout` as given (seconds); unset: wait as long as it takes. */
  startupTimeout: string | undefined;
  runtime: RuntimeOptions;
  /** The drain after the first signal; past it (or on a second signal) the process exits at once. */
  shutdownTimeoutMs: number;
  /** Builds and starts the daemons on the open runtime, pushing each thing it starts onto `cleanup`. */
  start(runtime: Runtime, cleanup: CleanupStack): Promise<T>;
}

export interface StartedDaemon<T> {
  runtime: Runtime;
  /** Resolves on the first SIGTERM/SIGINT. */
  received: Promise<NodeJS.Signals>;
  value: T;
  /** Stops what `start` started, closes the database, then lets signals go. */
  close(): Promise<void>;
}

/**
 * A daemon's start-up, as one unit that survives its database: it waits for PostgreSQL to be
 * reachable (`openRuntime`'s wait), then starts the daemons — and if the database goes away half-way
 * (a connection terminated while the job row is written, a restart during the schema check), it
 * undoes what it had started and begins again, with backoff, until it is up, `--startup-timeout`
 * passes, or a signal arrives (undefined: exit 0, nothing left behind). Other errors end it at once.
 */
export async function startDaemon<T>(options: DaemonStartupOptions<T>): Promise<StartedDaemon<T> | undefined> {
  const timeoutMs = options.startupTimeout === undefined ? undefined : parseSeconds(options.startupTimeout, '--startup-timeout', 0);
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const shutdown = shutdownSignal({ forceAfterMs: options.shutdownTimeoutMs, onForce: (why) => console.error(`tsflow: ${why}`) });
  const startup = new AbortController();
  void shutdown.received.then(() => startup.abort());
  const log = createLogger(options.settings.logLevel ?? options.runtime.defaultLogLevel ?? 'info').child({ component: 'startup' });
  for (let attempt = 0; ; attempt++) {
    const cleanup = new CleanupStack();
    try {
      const runtime = await openRuntime(options.settings, { ...options.runtime, waitForDatabase: { timeoutMs, deadlineAt: deadline, signal: startup.signal } });
      cleanup.push('database', () => runtime.close());
      const value = await options.start(runtime, cleanup);
      return {
        runtime,
        received: shutdown.received,
        value,
        close: async () => {
          try {
            await cleanup.runAll();
          } finally {
            shutdown.dispose();
          }
        },
      };
    } catch (error) {
      await cleanup.runAll().catch((cleanupError: unknown) => log.warn({ err: cleanupError }, 'cleanup after a failed start failed'));
      const timedOut = deadline !== undefined && Date.now() >= deadline;
      if (error instanceof StartupCancelledError || startup.signal.aborted) {
        shutdown.dispose();
        return undefined;
      }
      if (!isRetryableError(error) || timedOut) {
        shutdown.dispose();
        throw error;
      }
      const delay = backoffMs(attempt, 500, 10_000);
      log.warn({ reason: error instanceof Error ? error.message : String(error), retryInMs: Math.round(delay) }, 'the database went away while starting: starting again');
      await sleep(delay, startup.signal);
    }
  }
}
