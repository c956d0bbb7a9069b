import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import net from 'node:net';
import { BIN } from './cli.ts';

/**
 * A `tsflow` daemon (or a command that blocks) running in a child process, for tests that act
 * while it runs: wait for a line of its output, then signal it. Every one a test starts must be
 * stopped (`stop()` sends SIGTERM and waits for the exit; `stopAllProcesses()` in an afterEach).
 */
export class CliProcess {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #listeners = new Set<() => void>();

  constructor(args: readonly string[], env: Record<string, string | undefined>) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, TSFLOW_HOME: process.env['TSFLOW_TEST_HOME'], TSFLOW_LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdin.end();
    this.child.stdout.on('data', (c: Buffer) => this.#append('stdout', c));
    this.child.stderr.on('data', (c: Buffer) => this.#append('stderr', c));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => {
      resolve({ code, signal });
      for (const listener of this.#listeners) listener();
    }));
    RUNNING.add(this);
    void this.exited.then(() => RUNNING.delete(this));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves when stdout or stderr (together) matches; rejects on exit or after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    return this.waitFor(() => pattern.test(this.stdout + this.stderr), `output matching ${pattern}`, timeoutMs);
  }

  /** Resolves when `check` holds (it is tested on each output and on `poll`); rejects on exit or after the deadline. */
  waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000, pollMs = 0): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (error?: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poller);
        this.#listeners.delete(test);
        if (error) reject(error);
        else resolve();
      };
      const test = (): void => {
        void Promise.resolve(check()).then(
          (ok) => {
            if (ok) finish();
            else if (!this.running) finish(new Error(`tsflow exited before ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
          },
          (error: unknown) => finish(error as Error),
        );
      };
      const timer = setTimeout(() => finish(new Error(`no ${what} within ${timeoutMs} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`)), timeoutMs);
      const poller = pollMs > 0 ? setInterval(test, pollMs) : undefined;
      this.#listeners.add(test);
      test();
    });
  }

  /** SIGTERM, then the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }

  #append(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    this[stream] += chunk.toString();
    for (const listener of this.#listeners) listener();
  }
}

const RUNNING = new Set<CliProcess>();

/** For an afterEach: stops every CLI process a test left running (SIGTERM, then waits). */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...RUNNING].map((p) => p.stop()));
}

/** A TCP port on 127.0.0.1 where nothing listens (bound, then closed). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Makes a database appear at `port`: forwards each connection to `target`. Stands in for
 * PostgreSQL coming up after the daemon started.
 */
export class TcpProxy {
  readonly #server: net.Server;
  readonly #sockets: Set<net.Socket>;

  private constructor(server: net.Server, sockets: Set<net.Socket>) {
    this.#server = server;
    this.#sockets = sockets;
  }

  static async listen(port: number, target: { host: string; port: number }): Promise<TcpProxy> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    return new TcpProxy(server, sockets);
  }

  /** Stops listening and cuts every forwarded connection. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
