import { performance } from 'node:perf_hooks';

export interface LoopWatchdogOptions {
  /** A tick later than this counts as blocked. @default 200 */
  thresholdMs: number;
  /** How often to check. @default 100 */
  intervalMs?: number;
  onBlocked: (blockedMs: number) => void;
}

/**
 * Notices when the event loop was blocked: a check scheduled every `intervalMs` that runs more than
 * `thresholdMs` late means some synchronous code held the loop that long (Airflow warns "async thread
 * was blocked"). The timer is unref'd and never keeps the process alive.
 */
export class LoopWatchdog {
  readonly #options: LoopWatchdogOptions;
  #timer: NodeJS.Timeout | undefined;
  #expected = 0;

  constructor(options: LoopWatchdogOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#timer) return;
    const interval = this.#options.intervalMs ?? 100;
    this.#expected = performance.now() + interval;
    this.#timer = setInterval(() => {
      const now = performance.now();
      const late = now - this.#expected;
      this.#expected = now + interval;
      if (late > this.#options.thresholdMs) this.#options.onBlocked(late);
    }, interval);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
