import type { TaskInstanceState } from '../db/schema.ts';
import type { TriggerRule } from '../sdk/trigger-rule.ts';

/** How a task's direct upstream task instances stand: counts by final state, and how many there are. */
export interface UpstreamCounts {
  readonly total: number;
  readonly success: number;
  readonly skipped: number;
  readonly failed: number;
  readonly upstreamFailed: number;
  readonly removed: number;
}

/** What the rule decides for a task instance with no state yet; `wait` leaves it for a later pass. */
export type RuleDecision = 'scheduled' | 'skipped' | 'upstream_failed' | 'wait';

/** Counts the final states among `states` (the upstream task instances' states; null: not started). */
export function countUpstream(states: readonly (TaskInstanceState | null)[]): UpstreamCounts {
  const counts = { total: states.length, success: 0, skipped: 0, failed: 0, upstreamFailed: 0, removed: 0 };
  for (const state of states) {
    if (state === 'success') counts.success++;
    else if (state === 'skipped') counts.skipped++;
    else if (state === 'failed') counts.failed++;
    else if (state === 'upstream_failed') counts.upstreamFailed++;
    else if (state === 'removed') counts.removed++;
  }
  return counts;
}

/**
 * Airflow's TriggerRuleDep with `flag_upstream_failed`: first whether the upstream outcomes settle
 * the task as skipped or upstream_failed (which may happen before every upstream is done, as a
 * failure under `all_success` does), then whether the rule is met. A task with no upstream runs.
 */
export function decideTriggerRule(rule: TriggerRule, c: UpstreamCounts): RuleDecision {
  if (c.total === 0 || rule === 'always') return 'scheduled';
  const done = c.success + c.skipped + c.failed + c.upstreamFailed + c.removed;
  const allDone = done >= c.total;
  const anyFailed = c.failed + c.upstreamFailed > 0;
  const settled = settle(rule, c, allDone, anyFailed);
  if (settled) return settled;
  return met(rule, c, allDone, anyFailed) ? 'scheduled' : 'wait';
}

/** The state the upstream outcomes force on the task, if any (`trigger_rule_dep.py`, the flag_upstream_failed branch). */
function settle(rule: TriggerRule, c: UpstreamCounts, allDone: boolean, anyFailed: boolean): 'skipped' | 'upstream_failed' | undefined {
  switch (rule) {
    case 'all_success':
      if (anyFailed) return 'upstream_failed';
      return c.skipped > 0 ? 'skipped' : undefined;
    case 'all_failed':
      return c.success > 0 || c.skipped > 0 ? 'skipped' : undefined;
    case 'one_success':
      if (allDone && c.skipped === c.total) return 'skipped';
      return allDone && c.success === 0 ? 'upstream_failed' : undefined;
    case 'one_failed':
      return allDone && !anyFailed ? 'skipped' : undefined;
    case 'one_done':
      return allDone && c.success === 0 && c.failed === 0 ? 'skipped' : undefined;
    case 'none_failed':
      return anyFailed ? 'upstream_failed' : undefined;
    case 'none_failed_min_one_success':
      if (anyFailed) return 'upstream_failed';
      return c.skipped === c.total ? 'skipped' : undefined;
    case 'none_skipped':
      return c.skipped > 0 ? 'skipped' : undefined;
    case 'all_skipped':
      return c.success > 0 || anyFailed ? 'skipped' : undefined;
    case 'all_done':
    case 'always':
      return undefined;
  }
}

/** Whether the rule lets the task run now (nothing forced a state on it). */
function met(rule: TriggerRule, c: UpstreamCounts, allDone: boolean, anyFailed: boolean): boolean {
  switch (rule) {
    case 'all_success':
      return c.success === c.total;
    case 'all_failed':
      return c.failed + c.upstreamFailed === c.total;
    case 'all_done':
      return allDone;
    case 'all_skipped':
      return c.skipped === c.total;
    case 'one_success':
      return c.success > 0;
    case 'one_failed':
      return anyFailed;
    case 'one_done':
      return c.success > 0 || c.failed > 0;
    case 'none_failed':
    case 'none_failed_min_one_success':
      return c.success + c.skipped === c.total;
    case 'none_skipped':
      return allDone && c.skipped === 0;
    case 'always':
      return true;
  }
}
