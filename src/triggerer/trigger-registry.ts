import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import * as builtins from '../../triggers/index.ts';
import { listModuleFiles } from '../common/module-files.ts';
import { classpathOf, isTriggerClass, type TriggerClass } from '../sdk/trigger.ts';

export class TriggerNotFoundError extends Error {
  override name = 'TriggerNotFoundError';
}

export interface TriggerRegistryOptions {
  /** Folders of user trigger modules (`--triggers-folder`), searched recursively. */
  folders: readonly string[];
  logger: Logger;
  /** A miss rescans the folders at most this often, to pick up new files. @default 5000 */
  rescanIntervalMs?: number;
}

/**
 * Maps a trigger row's classpath to a class. Classes come only from the built-in `triggers/` folder
 * and the configured triggers folders: a classpath is a name looked up here, never a path or module
 * specifier taken from the row, so a row cannot make the triggerer load arbitrary code.
 */
export class TriggerRegistry {
  readonly #classes = new Map<string, { cls: TriggerClass; source: string }>();
  readonly #imported = new Set<string>();
  readonly #options: TriggerRegistryOptions;
  #lastScan = 0;

  private constructor(options: TriggerRegistryOptions) {
    this.#options = options;
    for (const value of Object.values(builtins)) {
      if (isTriggerClass(value)) this.#register(value, 'tsflow/triggers');
    }
  }

  static async create(options: TriggerRegistryOptions): Promise<TriggerRegistry> {
    const registry = new TriggerRegistry(options);
    await registry.#scan();
    return registry;
  }

  /** Known classpaths, sorted. */
  get classpaths(): string[] {
    return [...this.#classes.keys()].sort();
  }

  /** The class for a classpath already known, without rescanning (the hot path of a claim). */
  lookup(classpath: string): TriggerClass | undefined {
    return this.#classes.get(classpath)?.cls;
  }

  async resolve(classpath: string): Promise<TriggerClass> {
    const found = this.#classes.get(classpath);
    if (found) return found.cls;
    if (Date.now() - this.#lastScan >= (this.#options.rescanIntervalMs ?? 5000)) {
      await this.#scan();
      const rescanned = this.#classes.get(classpath);
      if (rescanned) return rescanned.cls;
    }
    const where = this.#options.folders.length > 0 ? `the triggers folders (${this.#options.folders.join(', ')})` : 'no triggers folder is configured';
    throw new TriggerNotFoundError(
      `trigger class '${classpath}' is not a built-in and was not found in ${where}: ` +
        'put the module that exports it in a folder given with --triggers-folder (TSFLOW_TRIGGERS_FOLDER)',
    );
  }

  async #scan(): Promise<void> {
    this.#lastScan = Date.now();
    for (const folder of this.#options.folders) {
      for (const file of await listModuleFiles(folder)) {
        if (this.#imported.has(file)) continue;
        this.#imported.add(file);
        try {
          const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
          for (const value of Object.values(module)) {
            if (isTriggerClass(value)) this.#register(value, path.relative(folder, file));
          }
        } catch (error) {
          this.#options.logger.error({ err: error, file }, 'could not import trigger module');
        }
      }
    }
  }

  #register(cls: TriggerClass, source: string): void {
    const classpath = classpathOf(cls);
    const existing = this.#classes.get(classpath);
    if (existing && existing.cls !== cls) {
      this.#options.logger.error(
        { classpath, first: existing.source, second: source },
        `two trigger classes claim classpath '${classpath}'; keeping the one from ${existing.source}`,
      );
      return;
    }
    this.#classes.set(classpath, { cls, source });
  }
}
