import { watch, type FSWatcher } from 'node:fs';
import { filesUnder, FilePattern, statOrUndefined } from '../src/common/file-glob.ts';
import { MAX_TIMER_MS, sleep } from '../src/common/sleep.ts';
import { Wakeup } from '../src/common/wakeup.ts';
import type { DurationInput } from '../src/sdk/duration.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { durationSeconds, refuseUnknownFields } from '../src/sdk/trigger-kwargs.ts';
import { BaseTrigger, TriggerEvent } from '../src/sdk/trigger.ts';

export interface FileExistsTriggerKwargs {
  /**
   * An absolute path to a file or a directory, or a glob such as `/data/in/*.csv`. A directory counts
   * once it holds a file (anywhere below it), as in Airflow; its files are then the matches.
   */
  path: string;
  /** How often to look when no filesystem event arrives (events are unreliable on network filesystems). @default 5 seconds */
  pollInterval?: DurationInput;
  /** Let `**` match any number of directories (Python's `glob(recursive=True)`). @default false */
  recursive?: boolean;
  /** Only files of at least this many bytes count. @default 0 */
  minSize?: number;
  /** Only files whose modification time is at least this long ago count, so a file still being written does not fire. @default 0 */
  stableFor?: DurationInput;
}

/** The kwargs as stored in the trigger row: durations in seconds, every field present. */
export type FileExistsTriggerRow = { path: string; pollInterval: number; recursive: boolean; minSize: number; stableFor: number };

/** The event: the files that matched, sorted; at most `MAX_REPORTED_PATHS`, with `truncated` set if there were more. */
export type FileExistsEventPayload = { paths: string[]; truncated: boolean };

/** What one look at the filesystem found. */
export interface FileScan extends FileExistsEventPayload {
  /** Epoch ms at which a file that is big enough but still changing becomes stable, if any. */
  stableAt: number | undefined;
}

export const MAX_REPORTED_PATHS = 1000;
/** A burst of filesystem events (a file being written) leads to at most one look per this many ms. */
const MIN_LOOK_GAP_MS = 100;

/**
 * Fires when files matching `path` exist (Airflow's `FileTrigger`). It watches the nearest existing
 * directory with `fs.watch` for a prompt wake and looks every `pollInterval` as well, since watches
 * miss changes on network filesystems and below the watched directory. Only asynchronous filesystem
 * calls, so thousands of these share the triggerer's event loop. `stableFor` is judged by each
 * file's modification time, so a restart, a poke on a worker and a trigger all agree.
 */
export class FileExistsTrigger extends BaseTrigger<FileExistsTriggerRow> {
  static override readonly classpath: string = 'tsflow.triggers.FileExistsTrigger';
  readonly pattern: FilePattern;
  #watcher: FSWatcher | undefined;
  #watched = '';

  constructor(kwargs: FileExistsTriggerKwargs) {
    const owner = new.target.name;
    const row = normalise(kwargs, owner);
    super(row);
    this.pattern = compilePattern(row, owner);
  }

  /** Looks once: the files that match now and meet `minSize` and `stableFor`. */
  async scan(now: number = Date.now()): Promise<FileScan> {
    const { minSize, stableFor } = this.kwargs;
    const stableMs = stableFor * 1000;
    const seen = new Set<string>();
    const paths: string[] = [];
    let stableAt: number | undefined;
    const consider = async (file: string): Promise<boolean> => {
      if (seen.has(file)) return false;
      seen.add(file);
      const stats = await statOrUndefined(file);
      if (!stats?.isFile() || stats.size < minSize) return false;
      if (now - stats.mtimeMs < stableMs) {
        stableAt = Math.min(stableAt ?? Number.POSITIVE_INFINITY, stats.mtimeMs + stableMs);
        return false;
      }
      paths.push(file);
      return paths.length > MAX_REPORTED_PATHS;
    };
    outer: for await (const match of this.pattern.matches()) {
      const stats = await statOrUndefined(match);
      if (stats?.isDirectory()) {
        for await (const file of filesUnder(match)) if (await consider(file)) break outer;
      } else if (await consider(match)) break;
    }
    const truncated = paths.length > MAX_REPORTED_PATHS;
    return { paths: paths.slice(0, MAX_REPORTED_PATHS).sort(), truncated, stableAt };
  }

  override async run(signal: AbortSignal): Promise<TriggerEvent<FileExistsEventPayload> | undefined> {
    const wakeup = new Wakeup();
    const pollMs = Math.min(this.kwargs.pollInterval * 1000, MAX_TIMER_MS); // one timer; a longer wait just looks early
    try {
      while (!signal.aborted) {
        const lookedAt = Date.now();
        await this.#watchNearestDir(wakeup); // subscribe, then look, then sleep: no change is missed
        const found = await this.scan();
        if (signal.aborted) break;
        if (found.paths.length > 0) {
          this.log.info({ matches: found.paths.length, first: found.paths[0] }, 'files found');
          return new TriggerEvent({ paths: found.paths, truncated: found.truncated });
        }
        const untilStable = found.stableAt === undefined ? pollMs : found.stableAt - Date.now() + 1;
        await wakeup.wait(Math.max(0, Math.min(pollMs, untilStable)), signal);
        const sinceLook = Date.now() - lookedAt;
        if (sinceLook < MIN_LOOK_GAP_MS) await sleep(MIN_LOOK_GAP_MS - sinceLook, signal);
      }
      return undefined;
    } finally {
      this.#unwatch();
    }
  }

  override cleanup(): void {
    this.#unwatch();
  }

  /** Watches the nearest existing directory (again, if it moved or was recreated); polling covers a failure. */
  async #watchNearestDir(wakeup: Wakeup): Promise<void> {
    const { dir, identity } = await this.pattern.nearestExistingDir();
    const key = `${dir}\0${identity}`;
    if (this.#watcher && this.#watched === key) return;
    this.#unwatch();
    const relevant = this.pattern.relevantNames(dir);
    try {
      const watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || !relevant || relevant(String(name))) wakeup.nudge();
      });
      watcher.on('error', (error) => {
        // No nudge: a watch that keeps failing must not turn into a busy loop; the next poll re-arms it.
        this.log.debug({ dir, err: error }, 'directory watch failed; polling only until the next look');
        if (this.#watcher === watcher) this.#unwatch();
      });
      this.#watcher = watcher;
      this.#watched = key;
    } catch (error) {
      // ENOSPC (inotify limit), EPERM, a directory removed meanwhile: polling still finds the file.
      this.log.debug({ dir, err: error }, 'cannot watch directory; polling only');
    }
  }

  #unwatch(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#watched = '';
  }
}

function normalise(kwargs: FileExistsTriggerKwargs, owner: string): FileExistsTriggerRow {
  if (typeof kwargs !== 'object' || kwargs === null) throw new InvalidTriggerKwargsError(`${owner} needs kwargs { path, … }, got ${String(kwargs)}`);
  refuseUnknownFields(kwargs, ['path', 'pollInterval', 'recursive', 'minSize', 'stableFor'], owner);
  const { path, recursive = false, minSize = 0 } = kwargs;
  if (typeof path !== 'string') throw new InvalidTriggerKwargsError(`${owner} path must be a string (a file, a directory or a glob), got ${String(path)}`);
  if (typeof recursive !== 'boolean') throw new InvalidTriggerKwargsError(`${owner} recursive must be true or false, got ${String(recursive)}`);
  if (!Number.isSafeInteger(minSize) || minSize < 0) {
    throw new InvalidTriggerKwargsError(`${owner} minSize must be a whole number of bytes ≥ 0, got ${String(minSize)}`);
  }
  return {
    path,
    pollInterval: durationSeconds(kwargs.pollInterval ?? 5, `${owner} pollInterval`, true),
    recursive,
    minSize,
    stableFor: durationSeconds(kwargs.stableFor ?? 0, `${owner} stableFor`),
  };
}

function compilePattern(row: FileExistsTriggerRow, owner: string): FilePattern {
  try {
    return new FilePattern(row.path, row.recursive);
  } catch (error) {
    throw new InvalidTriggerKwargsError(`${owner} path ${(error as Error).message}`, { cause: error });
  }
}
