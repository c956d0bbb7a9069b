import type { Notifier } from '../db/notifier.ts';
import type { Notification } from '../db/protocol.ts';

/** What an SSE client receives: a daemon's notification, or `reconnected` (events may have been missed: reload). */
export type LiveEvent = { kind: 'notification'; notification: Notification } | { kind: 'reconnected' };

export type LiveListener = (event: LiveEvent) => void;

/**
 * The API server's one LISTEN connection, fanned out to every open event stream. The daemons'
 * NOTIFYs say "look now", so a client reloads what it shows; after the connection is lost and back,
 * each client is told `reconnected`, since notifications sent meanwhile are gone.
 */
export class LiveEvents {
  readonly #notifier: Notifier;
  readonly #listeners = new Set<LiveListener>();
  #state: 'created' | 'running' | 'stopped' = 'created';

  constructor(notifier: Notifier) {
    this.#notifier = notifier;
    notifier.on('notification', (notification) => this.#emit({ kind: 'notification', notification }));
    notifier.on('reconnected', () => this.#emit({ kind: 'reconnected' }));
  }

  get state(): 'created' | 'running' | 'stopped' {
    return this.#state;
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }

  async start(): Promise<void> {
    if (this.#state !== 'created') return;
    this.#state = 'running';
    await this.#notifier.start();
  }

  /** Calls `listener` for every event until the returned function is called. */
  subscribe(listener: LiveListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#listeners.clear();
    await this.#notifier.stop();
  }

  #emit(event: LiveEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // One broken stream must not stop the others.
      }
    }
  }
}
