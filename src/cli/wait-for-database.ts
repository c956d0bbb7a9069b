import type { Logger } from '../common/logger.ts';
import { assertReachable, DatabaseUnreachableError, redactUrl, type Database } from '../db/database.ts';
import { withRetry } from '../db/retry.ts';

export interface WaitForDatabase {
  /** Give up when the database is still unreachable after this long. @default unlimited */
  timeoutMs?: number | undefined;
  /** When the wait is part of a longer start-up: the moment (epoch ms) `timeoutMs` runs out. @default now + timeoutMs */
  deadlineAt?: number | undefined;
  /** Aborting (the first SIGTERM) ends the wait at once with a `StartupCancelledError`. */
  signal: AbortSignal;
}

/** The wait for the database was cut short by a signal: the daemon exits 0, having written nothing. */
export class StartupCancelledError extends Error {
  override name = 'StartupCancelledError';
}

/** The first retry comes within half a second; later ones back off, jittered, to at most 10 s apart. */
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 10_000;

/**
 * A daemon started before its database (a host booting, a failover, a compose file's race) waits
 * for it: the first attempt at once, then retries with capped jittered backoff for as long as
 * PostgreSQL says "not yet" — connection refused, DNS failure, the server starting up (57P03).
 * Anything else (a refused password, a database that does not exist) is an error at once.
 */
export async function waitUntilReachable(database: Database, logger: Logger, options: WaitForDatabase): Promise<void> {
  const where = redactUrl(database.url);
  const log = logger.child({ component: 'startup', database: where });
  const deadline =
    options.timeoutMs === undefined ? undefined : AbortSignal.timeout(Math.max(0, (options.deadlineAt ?? Date.now() + options.timeoutMs) - Date.now()));
  const stop = deadline ? AbortSignal.any([options.signal, deadline]) : options.signal;
  let waited = false;
  let lastFailure: unknown;
  const attempt = async (): Promise<void> => {
    try {
      await untilAborted(assertReachable(database), stop);
    } catch (error) {
      if (!stop.aborted) lastFailure = error;
      throw error;
    }
  };
  try {
    await withRetry(attempt, {
      baseMs: FIRST_BACKOFF_MS,
      capMs: MAX_BACKOFF_MS,
      signal: stop,
      onRetry: (error, attempt, delayMs) => {
        waited = true;
        log.warn({ attempt: attempt + 1, retryInMs: Math.round(delayMs), reason: reasonOf(error) }, 'waiting for the database: it is not reachable yet');
      },
    });
  } catch (error) {
    if (options.signal.aborted) throw new StartupCancelledError(`stopped while waiting for the database at ${where}`, { cause: error });
    if (deadline?.aborted) {
      throw new DatabaseUnreachableError(
        `the database at ${where} is still unreachable after --startup-timeout ${(options.timeoutMs ?? 0) / 1000} s (${reasonOf(lastFailure ?? error)}): ` +
          'start PostgreSQL, check TSFLOW_DATABASE_URL, or raise --startup-timeout',
        { cause: lastFailure ?? error },
      );
    }
    throw error;
  }
  if (waited) log.info('the database is reachable: starting');
}

/** The connection attempt itself can take seconds (a host that drops packets): a signal need not wait for it. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  work.catch(() => undefined); // an attempt abandoned on abort must not become an unhandled rejection
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

/** The underlying driver error's message (the wrapper's own message repeats the URL and the advice). */
function reasonOf(error: unknown): string {
  const cause = error instanceof DatabaseUnreachableError ? error.cause : error;
  if (cause instanceof AggregateError && cause.errors.length > 0) return cause.errors.map((e: unknown) => reasonOf(e)).join('; ');
  const code = (cause as { code?: unknown } | null)?.code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}
