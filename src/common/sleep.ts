/** The longest delay `setTimeout` accepts (about 24.8 days); longer waits are taken in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Resolves at wall-clock time `epochMs` (or at once if it has passed), or when `signal` aborts —
 * whichever is first. One timer per call; when it wakes early because the wall clock was set back,
 * it sleeps again for what remains. Never rejects.
 */
export function sleepUntil(epochMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => new Sleep(epochMs, signal, resolve).arm());
}

/**
 * One pending sleep. A class with the timer taking it as its argument and itself as the abort
 * listener (`handleEvent`), so a sleep allocates no closures: a triggerer keeps 100,000 of these.
 */
class Sleep {
  readonly #at: number;
  readonly #signal: AbortSignal | undefined;
  readonly #resolve: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(at: number, signal: AbortSignal | undefined, resolve: () => void) {
    this.#at = at;
    this.#signal = signal;
    this.#resolve = resolve;
  }

  arm(): void {
    if (this.#timer === undefined) {
      if (this.#signal?.aborted) return this.#resolve();
      this.#signal?.addEventListener('abort', this, { once: true });
    }
    const remaining = this.#at - Date.now();
    if (remaining <= 0) return this.handleEvent();
    this.#timer = setTimeout(Sleep.#wake, Math.min(remaining, MAX_TIMER_MS), this);
  }

  /** The abort listener (EventTarget calls `handleEvent` on listener objects), and the end of the sleep. */
  handleEvent(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this);
    this.#resolve();
  }

  static #wake(sleep: Sleep): void {
    sleep.arm();
  }
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
