import type { Db } from '../db/database.ts';
import { rowKey, type TaskInstanceKey, type TaskInstanceRow, type TaskInstanceState } from '../db/schema.ts';
import { listUndecidedRunTaskInstances, transitionTaskInstances, type StateChange } from '../db/scheduling.ts';
import { expandTaskInstance } from '../db/task-mapping.ts';
import type { DagSpec } from '../dag-bag/serialized-dag.ts';
import { mappedLength, MappingError } from './task-mapping.ts';
import { countUpstream, decideTriggerRule } from './trigger-rules.ts';

/** Skips and upstream failures cascade one level per round; a DAG deeper than this finishes next pass. */
const DEPENDENCY_ROUNDS = 50;

const keyString = (dagId: string, runId: string, taskId: string): string => `${dagId}\u0000${runId}\u0000${taskId}`;
const tiString = (key: TaskInstanceKey): string => `${keyString(key.dagId, key.runId, key.taskId)}\u0000${key.mapIndex ?? -1}`;

/**
 * Each task's trigger rule (`decideTriggerRule`), over the task instances of running runs that have
 * no state yet: `scheduled`, or a `skipped` / `upstream_failed` that then cascades. The writes are fenced on the row still having no state, so two schedulers
 * evaluating at once change each row once. An upstream task's state counts once per task instance:
 * a mapped upstream once per map index. A mapped task whose unexpanded row (map index -1) may run is
 * expanded instead (`expandMapped`). Returns the changes that landed, in order.
 */
export async function evaluateDependencies(
  db: Db,
  dagOf: (dagId: string) => DagSpec | undefined,
): Promise<{ key: TaskInstanceKey; state: TaskInstanceState; error?: string }[]> {
  const landed: { key: TaskInstanceKey; state: TaskInstanceState; error?: string }[] = [];
  for (let round = 0; round < DEPENDENCY_ROUNDS; round++) {
    const rows = await listUndecidedRunTaskInstances(db);
    const states = new Map<string, (TaskInstanceState | null)[]>();
    for (const row of rows) {
      const id = keyString(row.dag_id, row.run_id, row.task_id);
      const list = states.get(id);
      if (list) list.push(row.state);
      else states.set(id, [row.state]);
    }
    const changes: StateChange[] = [];
    const toExpand: TaskInstanceRow[] = [];
    for (const row of rows) {
      if (row.state !== null) continue;
      const task = dagOf(row.dag_id)?.tasks.get(row.task_id);
      if (!task) continue;
      const upstream = task.upstream.flatMap((id) => states.get(keyString(row.dag_id, row.run_id, id)) ?? [null]);
      const decision = decideTriggerRule(task.triggerRule, countUpstream(upstream));
      if (decision === 'scheduled' && task.mapped && row.map_index === -1) toExpand.push(row);
      else if (decision !== 'wait') changes.push({ key: rowKey(row), state: decision });
    }
    let cascades = false;
    for (const row of toExpand) {
      const expanded = await expandMapped(db, dagOf(row.dag_id) as DagSpec, row);
      if (expanded.some((c) => c.state !== 'scheduled')) cascades = true;
      landed.push(...expanded);
    }
    const changed = await transitionTaskInstances(db, changes, [null]);
    const byKey = new Map(changes.map((c) => [tiString(c.key), c.state]));
    for (const key of changed) {
      const state = byKey.get(tiString(key)) as TaskInstanceState;
      if (state !== 'scheduled') cascades = true;
      landed.push({ key, state });
    }
    if (!cascades) break; // skips and upstream failures propagate: look again
  }
  return landed;
}

/**
 * A mapped task whose upstream allows it to run: count its map indexes from its lists and its
 * upstream XComs, and expand it — map indexes 0…n-1 `scheduled`, or `skipped` for none. An XCom that
 * is not a list (or was not pushed) fails the task, with the reason as its error.
 */
async function expandMapped(db: Db, dag: DagSpec, row: TaskInstanceRow): Promise<{ key: TaskInstanceKey; state: TaskInstanceState; error?: string }[]> {
  const key = rowKey(row);
  let length: number;
  try {
    length = await mappedLength(db, dag, row.run_id, dag.tasks.get(row.task_id) as NonNullable<ReturnType<DagSpec['tasks']['get']>>);
  } catch (error) {
    if (!(error instanceof MappingError)) throw error;
    const failed = await transitionTaskInstances(db, [{ key, state: 'failed', error: error.message }], [null]);
    return failed.map((k) => ({ key: k, state: 'failed' as const, error: error.message }));
  }
  const expanded = await expandTaskInstance(db, key, length);
  if (expanded.kind === 'gone') return [];
  if (expanded.kind === 'skipped') return [{ key, state: 'skipped' }];
  return expanded.keys.map((k) => ({ key: k, state: 'scheduled' as const }));
}
