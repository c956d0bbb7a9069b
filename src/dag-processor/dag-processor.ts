import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { listModuleFiles } from '../common/module-files.ts';
import { Wakeup } from '../common/wakeup.ts';
import { Daemon } from '../daemon/daemon.ts';
import { DagFolderError } from '../dag-bag/dag-bag.ts';
import type { Database } from '../db/database.ts';
import { assertSchemaCurrent } from '../db/migrations.ts';
import type { Notifier } from '../db/notifier.ts';
import { withRetry } from '../db/retry.ts';
import { deactivateMissingFiles, importErrorFiles, recordParseResult } from '../db/serialized-dags.ts';
import type { DagProcessorEvents } from './dag-processor-events.ts';
import { compileDagProcessorOptions, type CompiledDagProcessorOptions, type DagProcessorOptions } from './dag-processor-options.ts';
import { FolderWatch } from './folder-watch.ts';
import { parseFiles, type FileParse } from './parse-files.ts';

export interface DagProcessorDeps {
  database: Database;
  /** The DAG folder, searched recursively. */
  folder: string;
  logger: Logger;
  /** Accepted so embedders can share one LISTEN connection; the processor itself needs no notifications yet. */
  notifier?: Notifier;
}

/** Files read at once while hashing the folder. */
const HASH_CONCURRENCY = 32;

/**
 * The DAG processor daemon (Airflow's `dag-processor`): keeps `serialized_dag`, `dag` and
 * `import_error` in step with the DAG folder. Each pass lists the folder's module files, hashes
 * them, and parses the new and changed ones in child processes (user code never runs here); each
 * file's result is written in its own transaction as it arrives. A watch on the folder starts a pass
 * moments after a change; a full scan every `scanIntervalMs` catches what the watch missed and
 * retries the files that failed. Several processors may share a folder and a database: the writes
 * are transactional and skip DAGs whose serialized form has not changed.
 */
export class DagProcessor extends Daemon<DagProcessorEvents> {
  readonly options: CompiledDagProcessorOptions;
  readonly folder: string;
  readonly #deps: DagProcessorDeps;
  readonly #wakeup = new Wakeup();
  /** Each file's content hash when this processor last recorded its parse. */
  readonly #known = new Map<string, string>();
  #lastScan = Number.NEGATIVE_INFINITY;
  #jobId: number | undefined;

  constructor(deps: DagProcessorDeps, options: DagProcessorOptions = {}) {
    super('dag-processor', deps.logger);
    this.options = compileDagProcessorOptions(options);
    this.folder = path.resolve(deps.folder);
    this.#deps = deps;
  }

  get jobId(): number | undefined {
    return this.#jobId;
  }

  /** Look at the folder now (what a file change does). */
  nudge(): void {
    this.#wakeup.nudge();
  }

  protected override async onStart(): Promise<void> {
    const { database } = this.#deps;
    const isDir = await stat(this.folder).then((s) => s.isDirectory(), () => false);
    if (!isDir) {
      throw new DagFolderError(`DAG folder ${this.folder} does not exist: create it, or point --dags-folder / TSFLOW_DAGS_FOLDER at your DAG files`);
    }
    await assertSchemaCurrent(database);
    const jobId = await this.registerJob(database.db, { jobType: 'dag_processor', hostname: this.options.hostname, pid: this.options.pid });
    this.#jobId = jobId;
    this.startHeartbeat(database.db, jobId, this.options.heartbeatIntervalMs);
    if (this.options.watch) {
      const watch = new FolderWatch(this.folder, this.options.debounceMs, this.log, () => this.#wakeup.nudge());
      this.onStop('watch', () => watch.close());
    }
    this.runLoop('dag-processor', this.#wakeup, () => this.#pass());
    this.log.info({ folder: this.folder, parseTimeoutMs: this.options.parseTimeoutMs, scanIntervalMs: this.options.scanIntervalMs }, 'DAG processor started');
    this.emit('started', { jobId });
  }

  protected override afterStop(): void {
    this.log.info('DAG processor stopped');
    this.emit('stopped', {});
  }

  /** One look at the folder; returns how long to sleep until the next scan. */
  async #pass(): Promise<number> {
    const db = this.#deps.database.db;
    const started = Date.now();
    const scan = started - this.#lastScan >= this.options.scanIntervalMs;
    const files = await listModuleFiles(this.folder);
    const present = new Set(files);
    const vanished = [...this.#known.keys()].filter((f) => !present.has(f));
    let deactivated: string[] = [];
    if (scan || vanished.length > 0) {
      deactivated = await withRetry(() => deactivateMissingFiles(db, this.folder, files), { maxAttempts: 5, signal: this.stopSignal });
      for (const file of vanished) this.#known.delete(file);
      if (deactivated.length > 0) this.log.info({ dagIds: deactivated }, 'deactivated the DAGs of DAG files that are gone');
    }
    // A full scan also retries every file with an import error (this processor's or another's): a
    // timeout under load, a DAG id that another file no longer holds, a module installed since.
    const retry = scan ? new Set(await importErrorFiles(db, this.folder)) : new Set<string>();
    const hashes = await hashFiles(files);
    const changed = files.filter((f) => hashes.has(f) && (this.#known.get(f) !== hashes.get(f) || retry.has(f)));
    if (scan) this.#lastScan = started;
    const figures = { files: changed.length, dags: 0, errors: 0 };
    if (changed.length > 0) {
      let writes = Promise.resolve();
      await parseFiles(this.folder, changed, {
        timeoutMs: this.options.parseTimeoutMs,
        processes: this.options.parsingProcesses,
        signal: this.stopSignal,
        entry: this.options.entry,
        onResult: (parse) => {
          writes = writes.then(() => this.#record(parse, hashes.get(parse.file) as string, figures));
        },
      });
      await writes;
      const durationMs = Date.now() - started;
      this.log.info({ files: figures.files, dags: figures.dags, importErrors: figures.errors, durationMs }, `parsed ${figures.files} DAG file(s) in ${durationMs} ms`);
    }
    this.emit('pass', { ...figures, durationMs: Date.now() - started, deactivated });
    return Math.max(0, this.options.scanIntervalMs - (Date.now() - this.#lastScan));
  }

  async #record(parse: FileParse, fileHash: string, figures: { dags: number; errors: number }): Promise<void> {
    const db = this.#deps.database.db;
    // Deadlocks and serialization failures between processors writing the same DAGs are retried:
    // the write is one transaction and repeating it is harmless.
    await withRetry(() => recordParseResult(db, { fileloc: parse.file, fileHash, dags: parse.dags, error: parse.error }, existsSync), { maxAttempts: 8 });
    this.#known.set(parse.file, fileHash);
    figures.dags += parse.dags.length;
    if (parse.error !== undefined) {
      figures.errors++;
      this.log.error({ file: parse.file, error: parse.error.split('\n')[0] }, `DAG file failed to import: ${path.relative(this.folder, parse.file)}`);
    }
    this.emit('file:recorded', { file: parse.file, dagIds: parse.dags.map((d) => d.dagId), error: parse.error });
  }
}

/** sha256 of each file's content; a file gone since it was listed is left out. */
async function hashFiles(files: readonly string[]): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (let i = 0; i < files.length; i += HASH_CONCURRENCY) {
    await Promise.all(
      files.slice(i, i + HASH_CONCURRENCY).map(async (file) => {
        const content = await readFile(file).catch(() => undefined);
        if (content) hashes.set(file, createHash('sha256').update(content).digest('hex'));
      }),
    );
  }
  return hashes;
}
