import type { Logger } from 'pino';

export interface BatchWatcherOptions<Q, S> {
  /** Reads what every watch asks in ONE statement; `S` is the snapshot each watch judges. */
  read(queries: readonly Q[]): Promise<S>;
  /** The safety poll behind the nudges (a NOTIFY missed across a reconnect). */
  pollIntervalMs: number;
  log: Logger;
  /** Told after each read (how many watches it covered), for tests and metrics. */
  onCheck?(watches: number): void;
}

interface Watch<Q, S> {
  query: Q;
  /** Returns true once settled. */
  judge(snapshot: S): boolean;
  fail(error: unknown): void;
}

/** After a failed read, retry this soon (doubling up to the poll interval): a database blip should not wait 30 s. */
const FIRST_RETRY_MS = 500;

/**
 * One shared watcher for many waits on database state (another DAG's runs; issue 17's external
 * events can bring their own `read`): the waits register a query and a judge, and every check reads
 * all their queries in one statement. A check runs when a wait is added, on `nudge()` (a relevant
 * NOTIFY, a reconnect of the LISTEN connection) and on a slow poll, never on a short timer, so a
 * thousand waits cost one query per notification. Nudges during a check coalesce into one more check.
 */
export class BatchWatcher<Q, S> {
  readonly #options: BatchWatcherOptions<Q, S>;
  readonly #watches = new Set<Watch<Q, S>>();
  #wanted = false;
  #checking = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #checks = 0;

  constructor(options: BatchWatcherOptions<Q, S>) {
    this.#options = options;
  }

  /** Reads done so far. */
  get checks(): number {
    return this.#checks;
  }

  get size(): number {
    return this.#watches.size;
  }

  /**
   * Resolves with `decide`'s first defined answer, or undefined when `signal` aborts (or the watcher
   * closes). A `decide` that throws rejects this wait only.
   */
  watch<T>(query: Q, decide: (snapshot: S, query: Q) => T | undefined, signal: AbortSignal): Promise<T | undefined> {
    if (signal.aborted || this.#closed) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      const done = (): void => {
        this.#watches.delete(watch);
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        done();
        resolve(undefined);
      };
      const watch: Watch<Q, S> = {
        query,
        judge: (snapshot) => {
          const answer = decide(snapshot, query);
          if (answer === undefined) return false;
          done();
          resolve(answer);
          return true;
        },
        fail: (error) => {
          done();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#watches.add(watch);
      this.nudge();
    });
  }

  /** Something may have changed: check every watch now (or right after the check under way). */
  nudge(): void {
    if (this.#closed || this.#watches.size === 0) return;
    this.#wanted = true;
    if (!this.#checking) void this.#drain();
  }

  /** Stops polling; waiting watches resolve undefined as their triggers are cancelled. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #drain(): Promise<void> {
    this.#checking = true;
    clearTimeout(this.#timer);
    let retryMs: number | undefined;
    try {
      while (this.#wanted && !this.#closed && this.#watches.size > 0) {
        this.#wanted = false;
        const watches = [...this.#watches];
        let snapshot: S;
        try {
          this.#checks += 1;
          snapshot = await this.#options.read(watches.map((w) => w.query));
          this.#failures = 0;
        } catch (error) {
          this.#failures += 1;
          retryMs = Math.min(this.#options.pollIntervalMs, FIRST_RETRY_MS * 2 ** (this.#failures - 1)) * (0.75 + Math.random() / 2);
          this.#options.log.warn({ err: error, watches: watches.length, retryMs: Math.round(retryMs) }, 'could not read the watched runs; retrying');
          break;
        }
        for (const watch of watches) {
          if (!this.#watches.has(watch)) continue; // aborted while the read ran
          try {
            watch.judge(snapshot);
          } catch (error) {
            watch.fail(error);
          }
        }
        this.#options.onCheck?.(watches.length);
      }
    } finally {
      this.#checking = false;
      this.#arm(retryMs);
    }
  }

  /** The next check without a nudge: the safety poll, or a retry after a failed read. */
  #arm(delayMs = this.#options.pollIntervalMs): void {
    clearTimeout(this.#timer);
    if (this.#closed || this.#watches.size === 0) return;
    this.#timer = setTimeout(() => this.nudge(), delayMs);
    this.#timer.unref();
  }
}
