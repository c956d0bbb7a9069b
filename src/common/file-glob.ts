import type { Dirent, Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';

interface Segment {
  readonly text: string;
  /** Absent for a literal segment. */
  readonly match: ((name: string) => boolean) | undefined;
  /** `**` with `recursive`: zero or more directories. */
  readonly globstar: boolean;
}

/**
 * An absolute path that may be a glob (`*`, `?`, `[…]`, `{a,b}`; `**` across directories when
 * `recursive`, else like `*`, as Python's `glob`). It splits into a literal `base` and the segments
 * after it, and walks only the directories those segments can reach — with asynchronous calls only.
 * As in a shell, `*` does not match names starting with a dot, and symlinked directories are not
 * descended into by `**`.
 */
export class FilePattern {
  readonly pattern: string;
  readonly recursive: boolean;
  /** The leading part without glob characters: a directory to start from, or the whole path. */
  readonly base: string;
  readonly #segments: readonly Segment[];

  /** Throws a `RangeError` saying what is wrong with `pattern`. */
  constructor(pattern: string, recursive: boolean) {
    if (typeof pattern !== 'string' || pattern.trim() === '') throw new RangeError(`must not be empty: give the absolute path of a file, a directory or a glob, got '${String(pattern)}'`);
    if (pattern.includes('\0')) throw new RangeError('must not contain a NUL character');
    if (!path.isAbsolute(pattern)) {
      throw new RangeError(`must be absolute, got '${pattern}': the triggerer runs in another directory; use path.resolve('${pattern}')`);
    }
    this.pattern = pattern;
    this.recursive = recursive;
    const parts = pattern.split('/').filter((part) => part !== '');
    const literal: string[] = [];
    let index = 0;
    for (; index < parts.length && !isMagic(parts[index] as string); index++) literal.push(parts[index] as string);
    this.base = path.join('/', ...literal);
    this.#segments = parts.slice(index).map((text) => {
      if (!isMagic(text)) return { text, match: undefined, globstar: false };
      if (unbalancedBraces(text)) throw new RangeError(`has unbalanced braces in '${text}': braces may not span a '/'; keep each {a,b} within one path segment`);
      return { text, match: picomatch(text, { dot: false }), globstar: recursive && text === '**' };
    });
  }

  get isGlob(): boolean {
    return this.#segments.length > 0;
  }

  /** Existing paths (files or directories) the pattern names, in sorted order; may repeat with `**`. */
  async *matches(): AsyncGenerator<string> {
    if (!this.isGlob) {
      if (await statOrUndefined(this.base)) yield this.base;
      return;
    }
    yield* this.#walk(this.base, 0);
  }

  /**
   * The nearest existing directory at or above `base` — what to watch for a prompt wake — with an
   * identity (device and inode) that changes if it is deleted and created again.
   */
  async nearestExistingDir(): Promise<{ dir: string; identity: string }> {
    let dir = this.base;
    for (;;) {
      const stats = await statOrUndefined(dir);
      if (stats?.isDirectory()) return { dir, identity: `${stats.dev}:${stats.ino}` };
      const parent = path.dirname(dir);
      if (parent === dir) return { dir, identity: '' };
      dir = parent;
    }
  }

  /**
   * Which entries of the watched directory `dir` can change the matches, by name; undefined means
   * any. Lets a watcher on a busy directory ignore the churn of unrelated files.
   */
  relevantNames(dir: string): ((name: string) => boolean) | undefined {
    if (dir !== this.base) {
      const below = path.relative(dir, this.base);
      if (below === '' || below.startsWith('..')) return undefined;
      const next = below.split(path.sep)[0];
      return (name) => name === next;
    }
    const first = this.#segments[0];
    return first && !first.globstar ? first.match : undefined;
  }

  async *#walk(dir: string, index: number): AsyncGenerator<string> {
    const segment = this.#segments[index];
    if (!segment) {
      yield dir;
      return;
    }
    const last = index === this.#segments.length - 1;
    if (!segment.match) {
      const next = path.join(dir, segment.text);
      if (!last) yield* this.#walk(next, index + 1);
      else if (await statOrUndefined(next)) yield next;
      return;
    }
    const entries = await entriesOf(dir);
    if (segment.globstar) {
      yield* this.#walk(dir, index + 1);
      for (const entry of entries) {
        if (entry.isDirectory() && segment.match(entry.name)) yield* this.#walk(path.join(dir, entry.name), index);
      }
      return;
    }
    for (const entry of entries) {
      if (!segment.match(entry.name)) continue;
      const next = path.join(dir, entry.name);
      if (last) yield next;
      else if (entry.isDirectory() || entry.isSymbolicLink()) yield* this.#walk(next, index + 1);
    }
  }
}

/** Every regular file under `dir`, depth first in sorted order; symlinked directories are not followed. */
export async function* filesUnder(dir: string): AsyncGenerator<string> {
  for (const entry of await entriesOf(dir)) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(full);
    else if (entry.isFile()) yield full;
    else if (entry.isSymbolicLink() && (await statOrUndefined(full))?.isFile()) yield full;
  }
}

export async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch {
    return undefined; // gone, never there, or unreadable: not a match (the next look may differ)
  }
}

async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch {
    return []; // missing, not a directory, or unreadable: nothing to match here
  }
}

/** Glob characters (or an escape) make a segment a pattern rather than a literal name. */
function isMagic(segment: string): boolean {
  return segment.includes('\\') || picomatch.scan(segment).isGlob;
}

function unbalancedBraces(segment: string): boolean {
  let depth = 0;
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === '\\') i++;
    else if (c === '{') depth++;
    else if (c === '}') depth--;
    if (depth < 0) return true;
  }
  return depth !== 0;
}
