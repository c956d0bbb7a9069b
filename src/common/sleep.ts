/** The longest delay `setTimeout` accepts (about 24.8 days); longer waits are taken in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Resolves at wall-clock time `epochMs` (or at once if it has passed), or when `signal` aborts —
 * whichever is first. One timer per call; when it wakes early because the wall clock was set back,
 * it sleeps again for what remains. Never rejects.
 */
export function sleepUntil(epochMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      resolve();
    };
    const arm = (): void => {
      const remaining = epochMs - Date.now();
      if (remaining <= 0) return finish();
      timer = setTimeout(arm, Math.min(remaining, MAX_TIMER_MS));
    };
    signal?.addEventListener('abort', finish, { once: true });
    arm();
  });
}

/** `sleepUntil(now + ms)`. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return sleepUntil(Date.now() + ms, signal);
}

/** Waits for `work` at most `ms`; the timer is cleared either way, so it never holds the process open. */
export async function withTimeout<T>(work: Promise<T>, ms: number): Promise<{ timedOut: false; value: T } | { timedOut: true }> {
  const stop = new AbortController();
  try {
    return await Promise.race([
      work.then((value) => ({ timedOut: false as const, value })),
      sleep(ms, stop.signal).then(() => ({ timedOut: true as const })),
    ]);
  } finally {
    stop.abort();
  }
}
