import { AsyncLocalStorage } from 'node:async_hooks';
import type { TaskDefaults } from './base-operator.ts';
import type { Dag } from './dag.ts';

/**
 * What an operator under construction needs of the task group around it: kept apart from
 * `task-group.ts` so `base-operator.ts` can consult it without importing the group's dependency code.
 */
export interface GroupScope {
  readonly dag: Dag;
  /** The task id a label gets in this group: `extract.load` when the group prefixes its ids. */
  childId(label: string): string;
  /** The group's default args, its parents' included (the DAG's are not). */
  readonly defaultArgs: TaskDefaults;
  /** Records a task created in the group (and so in its parents). */
  addTask(taskId: string): void;
}

const scopeStorage = new AsyncLocalStorage<GroupScope>();

/** Runs `define` with `scope` as the group new operators join. */
export function runInGroupScope<T>(scope: GroupScope, define: () => T): T {
  return scopeStorage.run(scope, define);
}

/** The group whose callback is running, if it belongs to `dag`. */
export function currentGroupScope(dag: Dag): GroupScope | undefined {
  const scope = scopeStorage.getStore();
  return scope?.dag === dag ? scope : undefined;
}
