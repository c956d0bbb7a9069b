import type { AddressInfo } from 'node:net';
import { buildApiServer, type ApiApp, type ApiServerDeps, type ApiServerOptions } from './server.ts';

/**
 * The API server as a daemon: built from its dependencies, `start()` listens, `stop()` ends the
 * open event streams and closes the listener. It registers no job row (Airflow 3's api-server has
 * none): it holds no work a peer would take over. The database pool and the NOTIFY relay belong to
 * the caller, which closes them after `stop()`.
 */
export class ApiServer {
  readonly #deps: ApiServerDeps;
  readonly #options: ApiServerOptions;
  #app: ApiApp | undefined;
  #state: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  #starting: Promise<string> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(deps: ApiServerDeps, options: ApiServerOptions = {}) {
    this.#deps = deps;
    this.#options = options;
  }

  get state(): 'created' | 'running' | 'stopping' | 'stopped' {
    return this.#state;
  }

  /** Listens on host:port (port 0: a free one); resolves with the base URL. */
  start(host: string, port: number): Promise<string> {
    this.#starting ??= (async () => {
      const app = await buildApiServer(this.#deps, this.#options);
      this.#app = app;
      await app.listen({ host, port });
      this.#state = 'running';
      return this.url;
    })();
    return this.#starting;
  }

  get url(): string {
    const address = this.#app?.server.address() as AddressInfo | null | undefined;
    if (!address) throw new Error('the API server is not listening');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  get app(): ApiApp | undefined {
    return this.#app;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#starting?.catch(() => undefined);
      this.#state = 'stopping';
      await this.#app?.close();
      this.#state = 'stopped';
    })();
    return this.#stopping;
  }
}
