import { EventEmitter } from 'node:events';

/**
 * A small typed wrapper over EventEmitter: daemons announce lifecycle events (`trigger:fired`, …)
 * that tests and the standalone printer await. `on` returns its own unsubscribe function.
 */
export class TypedEmitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #emitter = new EventEmitter({ captureRejections: false });
  /** Type-level only (never set): lets helpers recover the event map from an emitter's type. */
  declare readonly '~events'?: Events;

  constructor() {
    this.#emitter.setMaxListeners(0);
  }

  on<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): () => void {
    this.#emitter.on(event, listener);
    return () => this.#emitter.off(event, listener);
  }

  /** Whether anyone listens: lets a hot path skip building a payload nobody reads. */
  protected listening(event: keyof Events & string): boolean {
    return this.#emitter.listenerCount(event) > 0;
  }

  protected emit<K extends keyof Events & string>(event: K, payload: Events[K]): void {
    if (this.#emitter.listenerCount(event) === 0) return;
    try {
      this.#emitter.emit(event, payload);
    } catch {
      // A listener's bug must not break the daemon that announced the event.
    }
  }
}
