import { Duration } from 'luxon';
import type { RetrySettings } from '../dag-bag/serialized-dag.ts';

/** Airflow's retry delay: fixed, or doubling per try (with jitter) up to maxRetryDelay. */
export function retryDelay(settings: RetrySettings, tryNumber: number): Duration {
  const { retryDelay: base, retryExponentialBackoff, maxRetryDelay } = settings;
  if (!retryExponentialBackoff) return base;
  // Between base·2^(try−2) and base·2^(try−1), as Airflow spreads retries of many failing tasks.
  const ceiling = base.toMillis() * 2 ** Math.max(0, tryNumber - 1);
  return Duration.fromMillis(Math.min(maxRetryDelay.toMillis(), ceiling * (0.5 + Math.random() / 2)));
}
