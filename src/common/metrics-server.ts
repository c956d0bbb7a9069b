import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';

/** Serves `GET /metrics` in the Prometheus text format. */
export class MetricsServer {
  readonly #server: http.Server;
  readonly #metrics: Metrics;

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
    this.#server = http.createServer((req, res) => {
      if (req.method === 'GET' && (req.url === '/metrics' || req.url === '/')) {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.#metrics.render());
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found: try GET /metrics\n');
      }
    });
  }

  /** Listens; returns the bound port (useful with port 0). */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    });
  }
}
