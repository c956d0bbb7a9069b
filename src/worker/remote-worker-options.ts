/** `tsflow worker`'s options. Times in milliseconds. */
export interface RemoteWorkerOptions {
  /** The tsflow queues whose task instances this worker takes. @default ['default'] */
  queues?: readonly string[];
  /** Task instances running at once (graphile-worker jobs in flight, warm task processes). @default 16 */
  concurrency?: number;
  /** How often the worker's job row is heartbeaten. @default 5000 */
  heartbeatIntervalMs?: number;
  /** graphile-worker's poll for jobs when no NOTIFY arrives (the safety net). @default 2000 */
  pollIntervalMs?: number;
  /** On stop, how long running tasks may take to finish before they are stopped and handed back for a retry. @default 60000 */
  shutdownTimeoutMs?: number;
}

export type CompiledRemoteWorkerOptions = Readonly<Required<RemoteWorkerOptions>>;

const QUEUE_NAME = /^[A-Za-z0-9_.-]+$/;

export function compileRemoteWorkerOptions(options: RemoteWorkerOptions): CompiledRemoteWorkerOptions {
  const compiled = {
    queues: [...new Set(options.queues ?? ['default'])],
    concurrency: options.concurrency ?? 16,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 5000,
    pollIntervalMs: options.pollIntervalMs ?? 2000,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 60_000,
  };
  if (compiled.queues.length === 0) throw new RangeError('a worker needs at least one queue');
  for (const queue of compiled.queues) {
    if (!QUEUE_NAME.test(queue)) throw new RangeError(`queue name '${queue}' may only hold letters, digits, '_', '.' and '-'`);
  }
  if (!Number.isInteger(compiled.concurrency) || compiled.concurrency < 1) throw new RangeError(`worker concurrency must be a whole number ≥ 1, got ${compiled.concurrency}`);
  for (const [name, value] of Object.entries({ heartbeatIntervalMs: compiled.heartbeatIntervalMs, pollIntervalMs: compiled.pollIntervalMs })) {
    if (!(value > 0)) throw new RangeError(`worker ${name} must be > 0, got ${value}`);
  }
  if (!(compiled.shutdownTimeoutMs >= 0)) throw new RangeError(`worker shutdownTimeoutMs must be ≥ 0, got ${compiled.shutdownTimeoutMs}`);
  return compiled;
}
