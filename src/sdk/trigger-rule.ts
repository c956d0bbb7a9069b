/** When a task runs, given how its upstream tasks ended (Airflow's `TriggerRule`). */
export const TRIGGER_RULES = [
  'all_success',
  'all_failed',
  'all_done',
  'all_skipped',
  'one_success',
  'one_failed',
  'one_done',
  'none_failed',
  'none_failed_min_one_success',
  'none_skipped',
  'always',
] as const;

export type TriggerRule = (typeof TRIGGER_RULES)[number];

export const DEFAULT_TRIGGER_RULE: TriggerRule = 'all_success';

export function isTriggerRule(value: unknown): value is TriggerRule {
  return typeof value === 'string' && (TRIGGER_RULES as readonly string[]).includes(value);
}

/** The rule, or an error naming the task, the bad value and the allowed ones. */
export function toTriggerRule(taskId: string, value: unknown): TriggerRule {
  if (value === undefined) return DEFAULT_TRIGGER_RULE;
  if (isTriggerRule(value)) return value;
  throw new TypeError(`task '${taskId}': triggerRule ${JSON.stringify(value)} is not a trigger rule: use one of ${TRIGGER_RULES.join(', ')}`);
}
