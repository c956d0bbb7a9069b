import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the test server answers to one request. `hang` never answers (until the server closes). */
export interface Answer {
  status: number;
  body?: string | object;
  headers?: Record<string, string>;
  delayMs?: number;
  hang?: boolean;
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A real HTTP server on 127.0.0.1 and a random port whose answers a test scripts: `answer(n, request)`
 * decides the n-th answer (0-based). It records every request and the most requests in flight at once.
 */
export class ScriptedServer {
  readonly requests: SeenRequest[] = [];
  maxInFlight = 0;
  #inFlight = 0;
  readonly #server: http.Server;

  private constructor(answer: (n: number, request: SeenRequest) => Answer) {
    this.#server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
        const n = this.requests.push(seen) - 1;
        this.maxInFlight = Math.max(this.maxInFlight, ++this.#inFlight);
        res.on('close', () => this.#inFlight--);
        const reply = answer(n, seen);
        if (reply.hang) return;
        const send = () => {
          const text = reply.body === undefined ? '' : typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
          const type = typeof reply.body === 'object' ? { 'content-type': 'application/json' } : { 'content-type': 'text/plain' };
          res.writeHead(reply.status, { ...type, ...reply.headers });
          res.end(text);
        };
        if (reply.delayMs) setTimeout(send, reply.delayMs);
        else send();
      });
    });
  }

  static async start(answer: (n: number, request: SeenRequest) => Answer, port = 0): Promise<ScriptedServer> {
    const server = new ScriptedServer(answer);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(port, '127.0.0.1', () => resolve());
    });
    return server;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  url(pathAndQuery = '/'): string {
    return `http://127.0.0.1:${this.port}${pathAndQuery}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Answers from `answers` in turn, then `last` for ever. */
export function inTurn(answers: Answer[], last: Answer): (n: number) => Answer {
  return (n) => answers[n] ?? last;
}
