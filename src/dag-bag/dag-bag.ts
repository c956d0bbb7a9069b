import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { listModuleFiles } from '../common/module-files.ts';
import { isDag, type Dag } from '../sdk/dag.ts';

export class DagNotFoundError extends Error {
  override name = 'DagNotFoundError';
}

export class DagFolderError extends Error {
  override name = 'DagFolderError';
}

/**
 * The DAGs defined by the files of a DAG folder (Airflow's DagBag). Every `.ts`/`.js`/`.mjs` file is
 * imported and each exported DAG registered. A file that throws is recorded as an import error; the
 * other files still load.
 */
export class DagBag {
  readonly folder: string;
  readonly #dags = new Map<string, Dag>();
  readonly #importErrors = new Map<string, Error>();
  readonly #staleFiles = new Set<string>();
  #version: string | undefined;

  private constructor(folder: string) {
    this.folder = folder;
  }

  /**
   * Loads every module in `folder`; with `only`, loads just those files (a worker running one task).
   * With `version`, each file is imported afresh (`?v=version` on its URL), not from the module cache:
   * a warm worker picking up a DAG file that changed.
   */
  static async load(folder: string, only?: readonly string[], options: { version?: string } = {}): Promise<DagBag> {
    const bag = new DagBag(path.resolve(folder));
    bag.#version = options.version;
    const isDir = await stat(bag.folder).then((s) => s.isDirectory(), () => false);
    if (!isDir) {
      throw new DagFolderError(`DAG folder ${bag.folder} does not exist: create it, or point --dags-folder / TSFLOW_DAGS_FOLDER at your DAG files`);
    }
    const files = only ? only.map((f) => path.resolve(f)) : await listModuleFiles(bag.folder);
    for (const file of files) await bag.#import(file);
    return bag;
  }

  /** A bag of DAGs built in code rather than imported from a folder (tests, embedding tsflow). */
  static of(dags: readonly Dag[], folder = '(in memory)'): DagBag {
    const bag = new DagBag(folder);
    for (const dag of dags) {
      if (bag.#dags.has(dag.dagId)) throw new Error(`DAG id '${dag.dagId}' is given twice`);
      bag.#dags.set(dag.dagId, dag);
    }
    return bag;
  }

  get dags(): ReadonlyMap<string, Dag> {
    return this.#dags;
  }

  /** Files that threw when imported, with their errors. */
  get importErrors(): ReadonlyMap<string, Error> {
    return this.#importErrors;
  }

  /**
   * Files a `version`ed load could not import afresh, so their cached version was used: Node loads
   * CommonJS modules (a DAG folder without `"type": "module"`) by file name, and cannot re-evaluate them.
   */
  get staleFiles(): ReadonlySet<string> {
    return this.#staleFiles;
  }

  getDag(dagId: string): Dag {
    const found = this.#dags.get(dagId);
    if (found) return found;
    const known = [...this.#dags.keys()].sort().join(', ') || 'none';
    let message = `DAG '${dagId}' not found in ${this.folder} (DAGs found: ${known})`;
    if (this.#importErrors.size > 0) {
      const [file, error] = [...this.#importErrors][0] as [string, Error];
      message += `; ${this.#importErrors.size} file(s) failed to import, e.g. ${path.relative(process.cwd(), file)}: ${error.message}`;
    }
    throw new DagNotFoundError(message);
  }

  async #import(file: string): Promise<void> {
    let module: Record<string, unknown>;
    const href = pathToFileURL(file).href;
    try {
      try {
        module = (await import(this.#version === undefined ? href : `${href}?v=${encodeURIComponent(this.#version)}`)) as Record<string, unknown>;
      } catch (error) {
        if (this.#version === undefined || !isQueryNotFound(error)) throw error;
        this.#staleFiles.add(file);
        module = (await import(href)) as Record<string, unknown>;
      }
    } catch (error) {
      this.#importErrors.set(file, error instanceof Error ? error : new Error(String(error)));
      return;
    }
    for (const value of new Set(Object.values(module))) {
      if (!isDag(value)) continue;
      const existing = this.#dags.get(value.dagId);
      if (existing && existing !== value) {
        this.#importErrors.set(file, new Error(`DAG id '${value.dagId}' is defined in both ${existing.fileloc} and ${file}`));
        continue;
      }
      value.fileloc = file;
      this.#dags.set(value.dagId, value);
    }
  }
}

/** The CommonJS loader takes `file.ts?v=…` for a file name, and finds no such file. */
function isQueryNotFound(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND' || code === 'ENOENT') && typeof message === 'string' && message.includes('?v=');
}
