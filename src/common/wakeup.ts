/**
 * "Sleep until there may be work": `wait(ms)` resolves after `ms`, or as soon as `nudge()` is called,
 * or when the signal aborts. A nudge that arrives while nobody waits is remembered, so a
 * notification between two waits is never lost.
 */
export class Wakeup {
  #pending = false;
  #wake: (() => void) | undefined;

  nudge(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /** Resolves to true when nudged, false on timeout or abort. */
  wait(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#pending || signal?.aborted) {
      const nudged = this.#pending;
      this.#pending = false;
      return Promise.resolve(nudged);
    }
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', finish);
        this.#wake = undefined;
        const nudged = this.#pending;
        this.#pending = false;
        resolve(nudged);
      };
      const timer = setTimeout(finish, Math.max(0, ms));
      signal?.addEventListener('abort', finish, { once: true });
      this.#wake = finish;
    });
  }
}

/** Exponential backoff with full jitter: 0 … min(cap, base · 2^attempt). */
export function backoffMs(attempt: number, baseMs = 100, capMs = 10_000): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
}
