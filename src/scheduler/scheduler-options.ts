export interface SchedulerOptions {
  /** The safety-net poll when no notification arrives. @default 5000 */
  pollIntervalMs?: number;
  /** How often the job row's heartbeat is written. @default 5000 */
  heartbeatIntervalMs?: number;
  /**
   * A `running` task instance whose heartbeat is older than this is a zombie: its worker died, and
   * the try is failed or retried (Airflow's `scheduler_zombie_task_threshold`). Keep it well above
   * the workers' heartbeat interval (5 s). @default 300000
   */
  zombieThresholdMs?: number;
  /** How often to look for zombies (Airflow's `zombie_detection_interval`). @default 10000 */
  zombieCheckIntervalMs?: number;
  /**
   * A task instance `queued` this long was queued by a scheduler that died before its executor
   * started it; the try is retried or failed (Airflow's `task_queued_timeout`). Checked with zombies.
   * @default 600000
   */
  queuedTimeoutMs?: number;
  /**
   * A scheduler whose heartbeat is older than this is dead: the task instances it queued and its
   * executor never started go back to `scheduled` for a live scheduler (Airflow's
   * `scheduler_health_check_threshold`). Keep it well above `heartbeatIntervalMs`. @default 30000
   */
  healthCheckThresholdMs?: number;
}

export type CompiledSchedulerOptions = Readonly<Required<SchedulerOptions>>;

/** Fills in the defaults and refuses values that would make the loop spin or never look. */
export function compileSchedulerOptions(options: SchedulerOptions = {}): CompiledSchedulerOptions {
  const compiled = {
    pollIntervalMs: options.pollIntervalMs ?? 5000,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 5000,
    zombieThresholdMs: options.zombieThresholdMs ?? 300_000,
    zombieCheckIntervalMs: options.zombieCheckIntervalMs ?? 10_000,
    queuedTimeoutMs: options.queuedTimeoutMs ?? 600_000,
    healthCheckThresholdMs: options.healthCheckThresholdMs ?? 30_000,
  };
  for (const [name, value] of Object.entries(compiled)) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`scheduler option ${name} must be a number of milliseconds > 0, got ${value}`);
  }
  if (compiled.healthCheckThresholdMs <= compiled.heartbeatIntervalMs) {
    throw new RangeError(
      `scheduler healthCheckThresholdMs (${compiled.healthCheckThresholdMs}) must exceed heartbeatIntervalMs (${compiled.heartbeatIntervalMs}), ` +
        'or live schedulers would be taken for dead',
    );
  }
  return Object.freeze(compiled);
}
