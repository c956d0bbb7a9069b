import type { DagSpec, SerializedTask } from '../dag-bag/serialized-dag.ts';
import type { Db } from '../db/database.ts';
import type { TaskInstanceSpec } from '../db/task-instances.ts';
import { xcomsForMapping } from '../db/task-mapping.ts';
import type { SerializedExpandSource } from '../sdk/mapped-operator.ts';

/*
 * The scheduler's side of dynamic task mapping: how many map indexes a mapped task has, from its
 * literal lists (known when the run starts) or its upstream XComs (known once they are pushed).
 */

/** A mapped task's expansion could not be counted: its XCom is not a list, or was never pushed. */
export class MappingError extends Error {
  override name = 'MappingError';
}

/** The task instances a new run starts with: one per task, and one per map index of a task mapped over literal lists only. */
export function taskInstanceSpecs(dag: DagSpec): TaskInstanceSpec[] {
  return [...dag.tasks.values()].flatMap((t) => {
    const base = {
      taskId: t.taskId,
      maxTries: t.retries,
      priorityWeight: t.priorityWeight,
      queue: t.queue,
      pool: t.pool,
      poolSlots: t.poolSlots,
      maxActiveTisPerDag: t.maxActiveTisPerDag ?? null,
    };
    const length = t.mapped ? literalLength(t.mapped.sources) : undefined;
    if (length === undefined) return [base];
    if (length === 0) return [{ ...base, state: 'skipped' as const }];
    return Array.from({ length }, (_, mapIndex) => ({ ...base, mapIndex }));
  });
}

function literalLength(sources: readonly SerializedExpandSource[]): number | undefined {
  let length = 1;
  for (const source of sources) {
    if (!('literal' in source)) return undefined;
    length *= source.literal;
  }
  return length;
}

/** How many map indexes `task` has in a run, now that its upstream XComs are in. */
export async function mappedLength(db: Db, dag: DagSpec, runId: string, task: SerializedTask): Promise<number> {
  if (!task.mapped) throw new Error(`task '${task.taskId}' is not mapped`);
  let length = 1;
  for (const source of task.mapped.sources) {
    if ('literal' in source) {
      length *= source.literal;
      continue;
    }
    const { taskId, key } = source.xcom;
    const rows = await xcomsForMapping(db, dag.dagId, runId, taskId, key);
    if (dag.tasks.get(taskId)?.mapped) {
      length *= rows.filter((r) => r.map_index >= 0).length;
      continue;
    }
    const value = rows.find((r) => r.map_index === -1)?.value;
    if (!Array.isArray(value)) {
      throw new MappingError(
        value === undefined
          ? `task '${task.taskId}' is mapped over the XCom '${key}' of task '${taskId}', which that task did not push`
          : `task '${task.taskId}' is mapped over the XCom '${key}' of task '${taskId}', which is not a list: ${JSON.stringify(value).slice(0, 200)}`,
      );
    }
    length *= value.length;
  }
  return length;
}
