import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';
import { processAlive } from '../../common/process-alive.ts';
import { sleep } from '../../common/sleep.ts';
import {
  canReach,
  findBinaries,
  reachableBinaries,
  resolveRunAs,
  type PostgresBinaries,
  type RunAs,
} from './postgres-binaries.ts';

export interface EmbeddedServerOptions {
  /** `TSFLOW_HOME`: holds the server's settings file, and by default its data. */
  home: string;
  logger: Logger;
  /** Extra `postgresql.conf` settings written when the cluster is created. */
  settings?: Readonly<Record<string, string>>;
  /**
   * Told, in a sentence for a person, about the one slow step a user would otherwise wonder about:
   * creating the cluster on first use. The CLI prints it; tests leave it out.
   */
  notice?: (message: string) => void;
}

export interface EmbeddedConnection {
  readonly url: string;
  /** True when this process started the server (and so stops it). */
  readonly startedHere: boolean;
  readonly dataDir: string;
}

/** Kept in `$TSFLOW_HOME/embedded-postgres.json` (mode 600). */
interface EmbeddedState {
  dataDir: string;
  password: string;
}

const USER = 'tsflow';
const DATABASE = 'tsflow';

/**
 * The embedded default: a real PostgreSQL from the `embedded-postgres` package, its cluster under
 * `$TSFLOW_HOME`. Every tsflow process with the same home shares one server: the first to need it
 * starts it (and stops it when it exits); the others find it through `postmaster.pid`.
 * `tsflow db start` starts one that outlives the command, until `tsflow db stop`.
 */
export class EmbeddedServer {
  readonly #options: EmbeddedServerOptions;
  #started: { binaries: PostgresBinaries; runAs: RunAs; dataDir: string } | undefined;

  constructor(options: EmbeddedServerOptions) {
    this.#options = options;
  }

  /** Connects to the running server for this home, starting (and creating) it if needed. */
  async start(): Promise<EmbeddedConnection> {
    const { home, logger } = this.#options;
    await mkdir(home, { recursive: true, mode: 0o700 });
    const release = await acquireLock(path.join(home, 'embedded-postgres.lock'));
    try {
      const runAs = resolveRunAs();
      const binaries = await reachableBinaries(await findBinaries(), runAs);
      const state = await this.#loadState(runAs, binaries);
      const running = await readRunningPort(state.dataDir);
      if (running !== undefined) {
        const url = connectionUrl(state.password, running);
        await ensureDatabase(url).catch((error: unknown) => {
          throw explainAuthFailure(error, home, state.dataDir);
        });
        return { url, startedHere: false, dataDir: state.dataDir };
      }
      const fresh = !(await exists(path.join(state.dataDir, 'PG_VERSION')));
      if (fresh) {
        this.#options.notice?.(`initialising a new PostgreSQL data folder in ${state.dataDir} (first use of ${home}; this takes a few seconds)`);
        await this.#initdb(binaries, runAs, state);
      }
      const port = await this.#pgCtlStart(binaries, runAs, state.dataDir);
      this.#started = { binaries, runAs, dataDir: state.dataDir };
      const url = connectionUrl(state.password, port);
      try {
        await ensureDatabase(url);
      } catch (error) {
        await this.stop().catch(() => undefined); // never leave a server we started behind
        throw explainAuthFailure(error, home, state.dataDir);
      }
      logger.info({ dataDir: state.dataDir, port, fresh }, 'embedded PostgreSQL started');
      return { url, startedHere: true, dataDir: state.dataDir };
    } finally {
      await release();
    }
  }

  /** Stops the server if this process started it. */
  async stop(): Promise<void> {
    const started = this.#started;
    if (!started) return;
    this.#started = undefined;
    await stopCluster(started.binaries, started.runAs, started.dataDir);
    this.#options.logger.info({ dataDir: started.dataDir }, 'embedded PostgreSQL stopped');
  }

  /** Stops whatever server runs for this home (`tsflow db stop`); false if none was running. */
  async stopAny(): Promise<boolean> {
    const runAs = resolveRunAs();
    const binaries = await reachableBinaries(await findBinaries(), runAs);
    const state = await readState(this.#options.home);
    if (!state || (await readRunningPort(state.dataDir)) === undefined) return false;
    await stopCluster(binaries, runAs, state.dataDir);
    return true;
  }

  /** Where the data lives and whether it runs, without starting anything. */
  async status(): Promise<{ dataDir: string | undefined; port: number | undefined }> {
    const state = await readState(this.#options.home);
    return { dataDir: state?.dataDir, port: state ? await readRunningPort(state.dataDir) : undefined };
  }

  async #loadState(runAs: RunAs, binaries: PostgresBinaries): Promise<EmbeddedState> {
    const { home, logger } = this.#options;
    const existing = await readState(home);
    if (existing) return existing;
    let dataDir = path.join(home, 'pgdata');
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    if (runAs.uid !== undefined) {
      await chown(dataDir, runAs.uid, runAs.gid ?? runAs.uid);
      if (!canReach(runAs, binaries.postgres, dataDir)) {
        // e.g. TSFLOW_HOME under /root (mode 700): the postgres user cannot enter it.
        await rm(dataDir, { recursive: true, force: true });
        const hash = createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 12);
        const parent = path.join('/var/tmp', `tsflow-embedded-${hash}`);
        await mkdir(parent, { recursive: true, mode: 0o755 });
        dataDir = path.join(parent, 'pgdata');
        // A cluster left there belongs to an earlier TSFLOW_HOME at this path whose settings (its
        // password) are gone: a fresh home means a fresh database, as when the data lives in the home.
        if ((await readRunningPort(dataDir)) !== undefined) await stopCluster(binaries, runAs, dataDir);
        await rm(dataDir, { recursive: true, force: true });
        await mkdir(dataDir, { recursive: true, mode: 0o700 });
        await chown(dataDir, runAs.uid, runAs.gid ?? runAs.uid);
        logger.info({ dataDir, home }, `the ${runAs.name} user cannot reach ${home}; the embedded PostgreSQL keeps its data in ${dataDir}`);
      }
    }
    const state: EmbeddedState = { dataDir, password: randomBytes(18).toString('base64url') };
    await writeFile(path.join(home, 'embedded-postgres.json'), JSON.stringify(state, null, 2), { mode: 0o600 });
    return state;
  }

  async #initdb(binaries: PostgresBinaries, runAs: RunAs, state: EmbeddedState): Promise<void> {
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'tsflow-initdb-'));
    const pwfile = path.join(scratch, 'pw');
    try {
      await writeFile(pwfile, `${state.password}\n`, { mode: 0o600 });
      if (runAs.uid !== undefined) {
        await chown(scratch, runAs.uid, runAs.gid ?? runAs.uid);
        await chown(pwfile, runAs.uid, runAs.gid ?? runAs.uid);
      }
      await run(binaries.initdb, [
        `--pgdata=${state.dataDir}`,
        `--username=${USER}`,
        `--pwfile=${pwfile}`,
        '--auth-local=scram-sha-256',
        '--auth-host=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
      ], runAs);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
    const settings: Record<string, string> = {
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: "''",
      max_connections: '200',
      ...this.#options.settings,
    };
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
    const conf = path.join(state.dataDir, 'postgresql.conf');
    await writeFile(conf, `${await readFile(conf, 'utf8')}\n# tsflow embedded server\n${lines.join('\n')}\n`);
  }

  async #pgCtlStart(binaries: PostgresBinaries, runAs: RunAs, dataDir: string): Promise<number> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      try {
        await run(binaries.pgCtl, ['start', '-D', dataDir, '-w', '-t', '60', '-s', '-l', path.join(dataDir, 'server.log'), '-o', `-p ${port}`], runAs);
        return port;
      } catch (error) {
        lastError = error; // most likely the port was taken between probing and binding
      }
    }
    const log = await readFile(path.join(dataDir, 'server.log'), 'utf8').catch(() => '');
    throw new Error(`the embedded PostgreSQL in ${dataDir} did not start: ${(lastError as Error).message}\n${log.slice(-2000)}`);
  }
}

/** A refused password means the settings file and the data no longer belong together: say so, and what to do. */
function explainAuthFailure(error: unknown, home: string, dataDir: string): unknown {
  if ((error as { code?: unknown }).code !== '28P01') return error;
  return new Error(
    `the embedded PostgreSQL in ${dataDir} refused the password in ${path.join(home, 'embedded-postgres.json')}: ` +
      `they do not belong together. To start afresh, run tsflow db stop, then remove ${dataDir} and that file.`,
    { cause: error },
  );
}

async function stopCluster(binaries: PostgresBinaries, runAs: RunAs, dataDir: string): Promise<void> {
  await run(binaries.pgCtl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60', '-s'], runAs);
}

async function readState(home: string): Promise<EmbeddedState | undefined> {
  try {
    return JSON.parse(await readFile(path.join(home, 'embedded-postgres.json'), 'utf8')) as EmbeddedState;
  } catch {
    return undefined;
  }
}

/** The port of a live, ready server for this data dir, read from `postmaster.pid`. */
async function readRunningPort(dataDir: string): Promise<number | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !processAlive(pid)) return undefined;
  return lines[7]?.trim() === 'ready' ? port : undefined;
}

function connectionUrl(password: string, port: number, database = DATABASE): string {
  return `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

async function ensureDatabase(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url.replace(/\/[^/]*$/, '/postgres') });
  await admin.connect();
  try {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }
}

function run(command: string, args: string[], runAs: RunAs): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      uid: runAs.uid,
      gid: runAs.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(command)} ${args[0] ?? ''} exited with ${code}: ${output.trim()}`));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function exists(file: string): Promise<boolean> {
  return readFile(file).then(
    () => true,
    () => false,
  );
}

/** An exclusive lock file holding our pid; a lock whose holder died is taken over. */
async function acquireLock(file: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(await readFile(file, 'utf8').catch(() => ''));
      const age = Date.now() - (await stat(file).then((s) => s.mtimeMs, () => 0));
      // An empty file is a lock being written right now, unless it has been empty for a while.
      const stale = holder > 0 ? !processAlive(holder) : age > 10_000;
      if (stale) {
        await rm(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${file} (held by pid ${holder}): another tsflow is starting the embedded server`, { cause: error });
      }
      await sleep(100);
    }
  }
}
