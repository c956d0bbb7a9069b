import os from 'node:os';

export interface TriggererOptions {
  /** Most triggers this triggerer owns at once. @default 1000 */
  capacity?: number;
  /** How often the job row's heartbeat is written. @default 5000 */
  heartbeatIntervalMs?: number;
  /** A triggerer whose heartbeat is older than this is dead, and its triggers are taken. @default 30000 */
  healthCheckThresholdMs?: number;
  /** The safety-net poll when no notification arrives. @default 10000 */
  pollIntervalMs?: number;
  /**
   * The safety poll of the run watcher (triggers waiting on other DAGs' runs), behind the NOTIFYs
   * that wake it. @default 30000
   */
  watchPollIntervalMs?: number;
  /** Warn when the event loop is blocked longer than this. @default 200 */
  blockedThresholdMs?: number;
  /** Most triggers claimed per statement. @default 5000 */
  claimBatchSize?: number;
  /** Most events written per statement. @default 5000 */
  writeBatchSize?: number;
  /** On stop, how long triggers may take to cancel and events to be written. @default 10000 */
  shutdownTimeoutMs?: number;
  /** @default os.hostname() */
  hostname?: string;
  /** @default process.pid */
  pid?: number;
}

export type CompiledTriggererOptions = Readonly<Required<TriggererOptions>>;

/** Validates once and fills in defaults; a bad value names the option. */
export function compileTriggererOptions(options: TriggererOptions = {}): CompiledTriggererOptions {
  const compiled: Required<TriggererOptions> = {
    capacity: options.capacity ?? 1000,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 5000,
    healthCheckThresholdMs: options.healthCheckThresholdMs ?? 30_000,
    pollIntervalMs: options.pollIntervalMs ?? 10_000,
    watchPollIntervalMs: options.watchPollIntervalMs ?? 30_000,
    blockedThresholdMs: options.blockedThresholdMs ?? 200,
    claimBatchSize: options.claimBatchSize ?? 5000,
    writeBatchSize: options.writeBatchSize ?? 5000,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 10_000,
    hostname: options.hostname ?? os.hostname(),
    pid: options.pid ?? process.pid,
  };
  for (const [name, value] of Object.entries(compiled)) {
    if (name === 'hostname') continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new RangeError(`triggerer option ${name} must be a whole number > 0, got ${String(value)}`);
    }
  }
  if (compiled.healthCheckThresholdMs <= compiled.heartbeatIntervalMs) {
    throw new RangeError(
      `healthCheckThresholdMs (${compiled.healthCheckThresholdMs}) must exceed heartbeatIntervalMs (${compiled.heartbeatIntervalMs}), ` +
        'or live triggerers would be taken for dead',
    );
  }
  return Object.freeze(compiled);
}
