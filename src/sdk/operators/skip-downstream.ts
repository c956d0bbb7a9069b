import type { BaseOperator } from '../base-operator.ts';

/** Every task downstream of `taskId`, however far (Airflow's `get_flat_relative_ids(upstream=False)`). */
export function allDownstream(task: BaseOperator, taskId = task.taskId): Set<string> {
  const seen = new Set<string>();
  const stack = [...task.dag.getTask(taskId).downstreamTaskIds];
  while (stack.length > 0) {
    const next = stack.pop() as string;
    if (seen.has(next)) continue;
    seen.add(next);
    stack.push(...task.dag.getTask(next).downstreamTaskIds);
  }
  return seen;
}

/**
 * The direct downstream tasks of a branch that are not followed (Airflow's `skip_all_except`): a
 * task downstream of a followed one is followed too — the join after an empty branch runs.
 */
export function notFollowed(branch: BaseOperator, followed: readonly string[]): string[] {
  const kept = new Set(followed);
  for (const id of followed) for (const below of allDownstream(branch, id)) kept.add(below);
  return [...branch.downstreamTaskIds].filter((id) => !kept.has(id)).sort();
}
