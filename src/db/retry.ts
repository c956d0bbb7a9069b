import { sleep } from '../common/sleep.ts';
import { backoffMs } from '../common/wakeup.ts';

/*
 * What PostgreSQL (or the socket under it) says is worth trying again, as graphile-worker's
 * RETRYABLE_ERROR_CODES: the statement did not take effect, or may be retried safely because every
 * tsflow write is fenced (it lands once, or finds the row already moved on).
 */

/** SQLSTATEs after which the same statement may succeed: the server is restarting, a lock or serialization conflict, a lost connection. */
export const RETRYABLE_SQLSTATES: ReadonlyMap<string, string> = new Map([
  ['40001', 'serialization_failure'],
  ['40P01', 'deadlock_detected'],
  ['55P03', 'lock_not_available'],
  ['57P01', 'admin_shutdown'],
  ['57P02', 'crash_shutdown'],
  ['57P03', 'cannot_connect_now'],
  ['57P05', 'idle_session_timeout'],
  ['53300', 'too_many_connections'],
  ['08000', 'connection_exception'],
  ['08001', 'sqlclient_unable_to_establish_sqlconnection'],
  ['08003', 'connection_does_not_exist'],
  ['08004', 'sqlserver_rejected_establishment_of_sqlconnection'],
  ['08006', 'connection_failure'],
  ['25P04', 'transaction_timeout'],
]);

/** Socket-level failures (node's error codes). */
const RETRYABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** pg and pg-pool report a dropped connection with these messages and no code. */
const CONNECTION_LOST = /Connection terminated|connection timeout|Client has encountered a connection error|Client was closed|terminating connection/i;

/** Whether `error` says "try again": a retryable SQLSTATE, a socket failure, or a lost connection. */
export function isRetryableError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (RETRYABLE_SQLSTATES.has(code) || RETRYABLE_NODE_CODES.has(code))) return true;
  const message = (error as { message?: unknown }).message;
  if (typeof message === 'string' && CONNECTION_LOST.test(message)) return true;
  // AggregateError (several addresses refused) and errors wrapped with `cause`.
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined && cause !== error && isRetryableError(cause)) return true;
  const errors = (error as { errors?: unknown }).errors;
  return Array.isArray(errors) && errors.length > 0 && errors.every((e) => isRetryableError(e));
}

export interface RetryOptions {
  /** Give up after this many attempts (the last error is thrown). @default Infinity */
  maxAttempts?: number;
  /** First backoff ceiling; it doubles per attempt, with full jitter. @default 50 */
  baseMs?: number;
  /** Largest backoff. @default 5000 */
  capMs?: number;
  /** Stops retrying (the last error is thrown) when aborted; the backoff sleep ends at once. */
  signal?: AbortSignal;
  /** Called before each backoff, with the error and the delay chosen. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Which errors are retried. @default isRetryableError */
  retryable?: (error: unknown) => boolean;
}

/**
 * Runs `operation` until it succeeds, retrying with capped, jittered backoff only what
 * `isRetryableError` accepts. The operation must be safe to repeat (fenced, or idempotent).
 */
export async function withRetry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { maxAttempts = Number.POSITIVE_INFINITY, baseMs = 50, capMs = 5000, signal, onRetry, retryable = isRetryableError } = options;
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!retryable(error) || attempt + 1 >= maxAttempts || signal?.aborted) throw error;
      const delay = backoffMs(attempt, baseMs, capMs);
      onRetry?.(error, attempt, delay);
      await sleep(delay, signal);
      if (signal?.aborted) throw error;
    }
  }
}
