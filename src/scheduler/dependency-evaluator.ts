import type { Db } from '../db/database.ts';
import type { TaskInstanceKey, TaskInstanceState } from '../db/schema.ts';
import { listUndecidedRunTaskInstances, transitionTaskInstances, type StateChange } from '../db/scheduling.ts';
import type { DagSpec } from '../dag-bag/serialized-dag.ts';
import { countUpstream, decideTriggerRule } from './trigger-rules.ts';

/** Skips and upstream failures cascade one level per round; a DAG deeper than this finishes next pass. */
const DEPENDENCY_ROUNDS = 50;

const keyString = (dagId: string, runId: string, taskId: string): string => `${dagId}\u0000${runId}\u0000${taskId}`;

/**
 * Each task's trigger rule (`decideTriggerRule`), over the task instances of running runs that have
 * no state yet: `scheduled`, or a `skipped` / `upstream_failed` that then cascades. The writes are fenced on the row still having no state, so two schedulers
 * evaluating at once change each row once. Returns the changes that landed, in order.
 */
export async function evaluateDependencies(
  db: Db,
  dagOf: (dagId: string) => DagSpec | undefined,
): Promise<{ key: TaskInstanceKey; state: TaskInstanceState }[]> {
  const landed: { key: TaskInstanceKey; state: TaskInstanceState }[] = [];
  for (let round = 0; round < DEPENDENCY_ROUNDS; round++) {
    const rows = await listUndecidedRunTaskInstances(db);
    const states = new Map<string, TaskInstanceState | null>();
    for (const row of rows) states.set(keyString(row.dag_id, row.run_id, row.task_id), row.state);
    const changes: StateChange[] = [];
    for (const row of rows) {
      if (row.state !== null) continue;
      const task = dagOf(row.dag_id)?.tasks.get(row.task_id);
      if (!task) continue;
      const upstream = task.upstream.map((id) => states.get(keyString(row.dag_id, row.run_id, id)) ?? null);
      const decision = decideTriggerRule(task.triggerRule, countUpstream(upstream));
      if (decision !== 'wait') changes.push({ key: { dagId: row.dag_id, runId: row.run_id, taskId: row.task_id }, state: decision });
    }
    const changed = await transitionTaskInstances(db, changes, [null]);
    const byKey = new Map(changes.map((c) => [keyString(c.key.dagId, c.key.runId, c.key.taskId), c.state]));
    let cascades = false;
    for (const key of changed) {
      const state = byKey.get(keyString(key.dagId, key.runId, key.taskId)) as TaskInstanceState;
      if (state !== 'scheduled') cascades = true;
      landed.push({ key, state });
    }
    if (!cascades) break; // skips and upstream failures propagate: look again
  }
  return landed;
}
