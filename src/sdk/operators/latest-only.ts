import { DateTime } from 'luxon';
import type { TaskContext } from '../context.ts';
import { BranchOperator, type BranchChoice } from './branch.ts';
import type { BaseOperatorOptions } from '../base-operator.ts';

/**
 * Lets its direct downstream tasks run only in the latest scheduled run (Airflow's
 * `LatestOnlyOperator`): a run triggered by hand always proceeds; otherwise the run proceeds when
 * now is after its data interval's end and at or before the next run's — a run caught up for an
 * older interval skips them. A DAG with no next run proceeds.
 */
export class LatestOnlyOperator extends BranchOperator {
  readonly #now: () => DateTime;

  /** `now`: the clock the window is judged by (tests); the system clock by default. */
  constructor(options: BaseOperatorOptions & { now?: () => DateTime }) {
    const { now, ...rest } = options;
    super(rest);
    this.#now = now ?? (() => DateTime.utc());
  }

  override chooseBranch(context: TaskContext): BranchChoice {
    const all = [...this.downstreamTaskIds];
    if (context.runType === 'manual') return all;
    const current = { start: context.dataIntervalStart, end: context.dataIntervalEnd };
    const next = this.dag.timetable.nextRun(current, { catchup: true }, this.#now());
    if (!next) return all;
    const now = this.#now();
    const latest = current.end < now && now <= next.dataInterval.end;
    context.log.info({ left: current.end.toISO(), right: next.dataInterval.end.toISO(), latest }, latest ? 'the latest run: proceeding' : 'not the latest run: skipping downstream');
    return latest ? all : [];
  }
}
