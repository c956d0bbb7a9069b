import PQueue from 'p-queue';

/**
 * Bounds concurrent work per host (`host:port`): at most `perHost` run at once, the rest wait in a
 * FIFO queue (p-queue). A queue exists only while its host has work, so the map never grows with the
 * number of hosts ever seen. A waiting task whose signal aborts leaves the queue without running.
 */
export class HostLimiter {
  readonly perHost: number;
  readonly #queues = new Map<string, PQueue>();

  constructor(perHost: number) {
    if (!Number.isInteger(perHost) || perHost < 1) throw new RangeError(`perHost must be a whole number ≥ 1, got ${perHost}`);
    this.perHost = perHost;
  }

  /** Runs `work` when `host` has a free slot; rejects with the abort reason if `signal` aborts first. */
  run<T>(host: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason); // never create a queue that no task will empty
    return this.#queue(host).add(() => work(), signal ? { signal } : {});
  }

  /** Requests running and waiting for `host` now. */
  load(host: string): { running: number; waiting: number } {
    const queue = this.#queues.get(host);
    return { running: queue?.pending ?? 0, waiting: queue?.size ?? 0 };
  }

  #queue(host: string): PQueue {
    let queue = this.#queues.get(host);
    if (!queue) {
      const created = new PQueue({ concurrency: this.perHost });
      created.addEventListener('idle', () => {
        if (this.#queues.get(host) === created) this.#queues.delete(host);
      });
      this.#queues.set(host, created);
      queue = created;
    }
    return queue;
  }
}
