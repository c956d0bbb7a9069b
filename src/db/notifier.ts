import pgListen, { type Subscriber } from 'pg-listen';
import type { Logger } from 'pino';
import { TypedEmitter } from '../common/typed-emitter.ts';
import { parseNotification, type Channel, type Notification } from './protocol.ts';

export interface NotifierOptions {
  url: string;
  channels: readonly Channel[];
  logger: Logger;
  /** How often to check a quiet connection still works. @default 5000 */
  paranoidCheckMs?: number;
}

export interface NotifierEvents {
  notification: Notification;
  /**
   * The connection was lost and is back, so notifications may have been missed; or one arrived that
   * this version cannot read (a newer tsflow's payload). Either way: look at everything now.
   */
  reconnected: undefined;
}

/**
 * LISTEN for tsflow's channels over one dedicated connection (pg-listen). pg-listen gives up after
 * 3 s of failed reconnects by default; here it retries forever with capped, jittered backoff, and
 * every reconnect is announced so each listener runs its catch-up query.
 */
export class Notifier extends TypedEmitter<NotifierEvents> {
  readonly #subscriber: Subscriber;
  readonly #options: NotifierOptions;
  #connectedOnce = false;
  #state: 'created' | 'running' | 'stopped' = 'created';

  constructor(options: NotifierOptions) {
    super();
    this.#options = options;
    // pg-listen is CommonJS with `exports.default`: from ESM its function sits on `.default`.
    this.#subscriber = pgListen.default(
      { connectionString: options.url, application_name: 'tsflow-listen' },
      {
        retryLimit: Infinity,
        retryTimeout: 0, // never give up
        retryInterval: (attempt: number) => Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2),
        paranoidChecking: options.paranoidCheckMs ?? 5000,
        parse: (payload: string) => payload,
      },
    );
    this.#subscriber.events.on('notification', (n) => {
      const notification = parseNotification(n.channel, typeof n.payload === 'string' ? n.payload : '');
      if (notification) {
        this.emit('notification', notification);
        return;
      }
      options.logger.debug({ channel: n.channel, payload: n.payload }, 'unknown notification; looking at everything');
      this.emit('reconnected', undefined);
    });
    this.#subscriber.events.on('connected', () => {
      if (this.#connectedOnce) {
        options.logger.info('notification connection restored');
        this.emit('reconnected', undefined);
      }
      this.#connectedOnce = true;
    });
    this.#subscriber.events.on('reconnect', (attempt) => {
      options.logger.warn({ attempt }, 'notification connection lost; reconnecting');
    });
    this.#subscriber.events.on('error', (error) => {
      options.logger.error({ err: error }, 'notification connection error');
    });
  }

  get state(): 'created' | 'running' | 'stopped' {
    return this.#state;
  }

  async start(): Promise<void> {
    if (this.#state !== 'created') return;
    this.#state = 'running';
    await this.#subscriber.connect();
    for (const channel of this.#options.channels) await this.#subscriber.listenTo(channel);
  }

  async stop(): Promise<void> {
    if (this.#state !== 'running') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopped';
    await this.#subscriber.close().catch(() => undefined);
  }
}
