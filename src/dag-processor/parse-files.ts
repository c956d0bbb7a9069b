import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SerializedDag } from '../dag-bag/serialized-dag.ts';
import { isParseMessage, type ParseMessage, type ParseRequest } from './parse-protocol.ts';

/** The tsflow command; a parse child is `tsflow dag-parser`, so DAG files load with tsx and `tsflow` resolves. */
export const TSFLOW_ENTRY = fileURLToPath(new URL('../../bin/tsflow.mjs', import.meta.url));

/** How long a parse child may take to start (load Node, tsx and tsflow) before its first file. */
const START_TIMEOUT_MS = 60_000;

/** One file, parsed: its DAGs, or the import error that stands for it. */
export interface FileParse {
  readonly file: string;
  readonly dags: readonly SerializedDag[];
  readonly error?: string;
}

export interface ParseFilesOptions {
  /** Longest time one file may take to import; past it the child is killed and the file gets an import error. @default 30000 */
  timeoutMs?: number;
  /** Children parsing at once, each a share of the files. @default 1 */
  processes?: number;
  /** Called with each file's outcome as it arrives (the DAG processor writes it at once). */
  onResult?: (parse: FileParse) => void;
  /** Aborting kills the children; files not parsed by then get no result. */
  signal?: AbortSignal;
  /** The script forked, given the argument `dag-parser`. @default bin/tsflow.mjs */
  entry?: string;
}

/** A parse child did not start, or died before it began any file: nothing is known about the files. */
export class ParserStartError extends Error {
  override name = 'ParserStartError';
}

/**
 * Parses DAG files in child processes (user code never runs in the caller's process): one child per
 * share of the files, each importing its files in turn. A file that hangs past `timeoutMs` has its
 * child SIGKILLed, and one that crashes its child (or calls process.exit) ends it; either becomes
 * that file's import error, and the rest of the share goes to a fresh child. Results come back in
 * no particular order; a file gets exactly one unless the signal aborts first.
 */
export async function parseFiles(folder: string, files: readonly string[], options: ParseFilesOptions = {}): Promise<FileParse[]> {
  const absolute = files.map((f) => path.resolve(folder, f));
  const processes = Math.max(1, Math.min(options.processes ?? 1, absolute.length));
  const shares: string[][] = Array.from({ length: processes }, () => []);
  absolute.forEach((file, i) => (shares[i % processes] as string[]).push(file));
  const results: FileParse[] = [];
  const collect = (parse: FileParse): void => {
    results.push(parse);
    options.onResult?.(parse);
  };
  await Promise.all(shares.map((share) => parseShare(share, options, collect)));
  return results;
}

async function parseShare(files: string[], options: ParseFilesOptions, collect: (parse: FileParse) => void): Promise<void> {
  let remaining = files;
  while (remaining.length > 0 && !options.signal?.aborted) {
    const done = new Set<string>();
    await runChild(remaining, options, (parse) => {
      done.add(parse.file);
      collect(parse);
    });
    remaining = remaining.filter((f) => !done.has(f));
  }
}

/**
 * One child over `files`, until it says done, hangs on a file, dies, or the signal aborts. The file
 * it was importing when it hung or died is reported with that as its error.
 */
function runChild(files: string[], options: ParseFilesOptions, collect: (parse: FileParse) => void): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const entry = options.entry ?? TSFLOW_ENTRY;
  return new Promise<void>((resolve, reject) => {
    // No inherited execArgv (the entry registers its loaders). What user code prints goes to this
    // process's stdout and stderr; results come only over IPC.
    const child: ChildProcess = fork(entry, ['dag-parser'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [], serialization: 'json' });
    let current: string | undefined;
    let started = false;
    let finished = false;
    let failure: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, why: () => string): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        failure = why();
        child.kill('SIGKILL');
      }, ms);
    };
    const onAbort = (): void => void child.kill('SIGKILL');
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    arm(START_TIMEOUT_MS, () => `the parse process did not start within ${START_TIMEOUT_MS / 1000} s`);

    child.on('message', (message: unknown) => {
      if (!isParseMessage(message)) return;
      const m: ParseMessage = message;
      if (m.type === 'started') {
        started = true;
        current = m.file;
        arm(timeoutMs, () => `took longer than ${timeoutMs / 1000} s to parse (--parse-timeout); its parse process was killed`);
      } else if (m.type === 'result') {
        clearTimeout(timer);
        current = undefined;
        collect(m.error === undefined ? { file: m.file, dags: m.dags } : { file: m.file, dags: [], error: m.error });
      } else {
        finished = true;
        // The child exits by itself; one whose DAG files left timers running is not waited for.
        arm(2000, () => 'it did not exit after its last file');
      }
    });
    child.on('error', () => undefined); // a failed send or kill surfaces as 'close'
    // 'close' comes after every message the child sent has been delivered.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (finished || options.signal?.aborted) return resolve();
      if (current !== undefined) {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        collect({ file: current, dags: [], error: failure ?? `the parse process ${how} while importing this file (does it call process.exit, or crash Node?)` });
        return resolve();
      }
      // Died between two files (a timer in an earlier file called process.exit): the rest go to a new child.
      if (started) return resolve();
      const how = failure ?? (signal ? `was killed by ${signal}` : `exited with code ${code}`);
      reject(new ParserStartError(`the DAG parse process (${entry} dag-parser) ${how} before it parsed any file`));
    });
    const request: ParseRequest = { type: 'parse', files };
    child.send(request, () => undefined);
  });
}
