import os from 'node:os';

export interface DagProcessorOptions {
  /** Longest time one file may take to import; past it its parse process is killed and the file gets an import error. @default 30000 */
  parseTimeoutMs?: number;
  /** A full scan of the folder this often, behind the file watch (which can miss changes). @default 30000 */
  scanIntervalMs?: number;
  /** After a change is seen, wait this long for more before parsing (an editor writes a file in several steps). @default 200 */
  debounceMs?: number;
  /** Parse processes at once when many files changed (the first parse). @default 2 */
  parsingProcesses?: number;
  /** How often the job row's heartbeat is written. @default 5000 */
  heartbeatIntervalMs?: number;
  /** Watch the folder for changes (off: only the periodic scan sees them). @default true */
  watch?: boolean;
  /** @default os.hostname() */
  hostname?: string;
  /** @default process.pid */
  pid?: number;
  /** The script forked to parse, given the argument `dag-parser`. @default bin/tsflow.mjs */
  entry?: string | undefined;
}

export type CompiledDagProcessorOptions = Readonly<Required<Omit<DagProcessorOptions, 'entry'>> & { entry: string | undefined }>;

/** Validates once and fills in defaults; a bad value names the option. */
export function compileDagProcessorOptions(options: DagProcessorOptions = {}): CompiledDagProcessorOptions {
  const compiled = {
    parseTimeoutMs: options.parseTimeoutMs ?? 30_000,
    scanIntervalMs: options.scanIntervalMs ?? 30_000,
    debounceMs: options.debounceMs ?? 200,
    parsingProcesses: options.parsingProcesses ?? 2,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 5000,
    watch: options.watch ?? true,
    hostname: options.hostname ?? os.hostname(),
    pid: options.pid ?? process.pid,
    entry: options.entry,
  };
  for (const name of ['parseTimeoutMs', 'scanIntervalMs', 'parsingProcesses', 'heartbeatIntervalMs'] as const) {
    const value = compiled[name];
    if (!Number.isInteger(value) || value <= 0) throw new RangeError(`DAG processor option ${name} must be a whole number > 0, got ${String(value)}`);
  }
  if (!Number.isInteger(compiled.debounceMs) || compiled.debounceMs < 0) {
    throw new RangeError(`DAG processor option debounceMs must be a whole number ≥ 0, got ${String(compiled.debounceMs)}`);
  }
  return Object.freeze(compiled);
}
