import type { Counter, Metrics, Summary } from '../common/metrics.ts';

/** The triggerer's counters and gauges (Airflow's `triggers.*` metrics, in Prometheus form). */
export class TriggererMetrics {
  readonly #fired: Counter;
  readonly #failed: Counter;
  readonly #cancelled: Counter;
  readonly #blocked: Counter;
  readonly #heartbeats: Counter;
  readonly #written: Counter;
  readonly #applied: Counter;
  readonly #lateness: Summary;
  readonly #batches: Counter;

  constructor(metrics: Metrics, running: () => number, capacity: number) {
    metrics.gauge('tsflow_triggerer_triggers_running', 'Triggers running on this triggerer.', running);
    metrics.gauge('tsflow_triggerer_capacity_left', 'How many more triggers this triggerer would take.', () => capacity - running());
    this.#fired = metrics.counter('tsflow_triggerer_triggers_fired_total', 'Triggers that produced an event.');
    this.#failed = metrics.counter('tsflow_triggerer_triggers_failed_total', 'Triggers that failed (threw, ended without an event, could not load).');
    this.#cancelled = metrics.counter('tsflow_triggerer_triggers_cancelled_total', 'Triggers cancelled (task cleared, timed out, taken over, shutdown).');
    this.#blocked = metrics.counter('tsflow_triggerer_blocked_loop_total', 'Times the event loop was blocked past the threshold.');
    this.#heartbeats = metrics.counter('tsflow_triggerer_heartbeat_total', 'Heartbeats written.');
    this.#written = metrics.counter('tsflow_triggerer_outcomes_written_total', 'Events and failures written to the database.');
    this.#applied = metrics.counter('tsflow_triggerer_outcomes_applied_total', 'Outcomes that passed the ownership fence.');
    this.#batches = metrics.counter('tsflow_triggerer_write_batches_total', 'Statements that wrote a batch of outcomes.');
    this.#lateness = metrics.summary('tsflow_triggerer_event_lateness_seconds', 'Fired at minus due at, for time triggers.');
  }

  fired(latenessMs: number | undefined): void {
    this.#fired.inc();
    if (latenessMs !== undefined) this.#lateness.observe(latenessMs / 1000);
  }
  failed(): void {
    this.#failed.inc();
  }
  cancelled(): void {
    this.#cancelled.inc();
  }
  blocked(): void {
    this.#blocked.inc();
  }
  heartbeat(): void {
    this.#heartbeats.inc();
  }
  written(total: number, applied: number): void {
    this.#batches.inc();
    this.#written.inc(total);
    this.#applied.inc(applied);
  }
}
