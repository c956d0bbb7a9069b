import type { BaseOperator, TaskDefaults } from './base-operator.ts';
import { currentDag, type Dag } from './dag.ts';
import { link, type Dependencies, type DependencyNode } from './dependencies.ts';
import { currentGroupScope, runInGroupScope, type GroupScope } from './group-scope.ts';

export interface TaskGroupOptions {
  /** Prefix the ids of the group's tasks (and groups) with the group id: `extract.load`. @default true */
  prefixGroupId?: boolean;
  /** Defaults for the group's tasks: over the DAG's (and a parent group's), under the task's own options. */
  defaultArgs?: TaskDefaults;
  /** Shown with the group; not used by the engine. */
  tooltip?: string;
}

const GROUP_ID = /^[A-Za-z0-9_-]{1,200}$/;
/** The groups of each DAG by id (a DAG object is defined once, so this only grows while it is defined). */
const groupsByDag = new WeakMap<Dag, Map<string, TaskGroup>>();

/** The task group `groupId` (its full id) of `dag`, if it has one: a branch may follow a group. */
export function findTaskGroup(dag: Dag, groupId: string): TaskGroup | undefined {
  return groupsByDag.get(dag)?.get(groupId);
}

/**
 * Tasks that belong together (Airflow's `TaskGroup`): created inside `taskGroup(id, () => { ... })`,
 * their ids are prefixed with the group id, they take the group's `defaultArgs`, and the group as a
 * whole can be a dependency: `group.setDownstream(t)` runs `t` after the group's leaves (its tasks
 * with no downstream inside the group), `group.setUpstream(t)` runs its roots after `t`.
 */
export class TaskGroup implements DependencyNode {
  /** The full id: a nested group's id carries its parent's prefix. */
  readonly groupId: string;
  readonly dag: Dag;
  readonly parent: TaskGroup | undefined;
  readonly prefixGroupId: boolean;
  readonly tooltip: string | undefined;
  readonly #defaultArgs: TaskDefaults;
  readonly #taskIds: string[] = [];

  constructor(groupId: string, options: TaskGroupOptions, dag: Dag, parent: TaskGroup | undefined) {
    if (typeof groupId !== 'string' || !GROUP_ID.test(groupId)) {
      throw new TypeError(`task group id ${JSON.stringify(groupId)} is not valid: use 1-200 letters, digits, '_' or '-' (no '.', which separates a group from its tasks)`);
    }
    this.dag = dag;
    this.parent = parent;
    this.groupId = parent ? parent.childId(groupId) : groupId;
    this.prefixGroupId = options.prefixGroupId ?? true;
    this.tooltip = options.tooltip;
    this.#defaultArgs = { ...parent?.defaultArgs, ...options.defaultArgs };
    const taken = groupsByDag.get(dag) ?? new Map<string, TaskGroup>();
    if (taken.has(this.groupId)) {
      throw new TypeError(`DAG '${dag.dagId}' already has a task group '${this.groupId}'; group ids must be unique (give this one another id)`);
    }
    taken.set(this.groupId, this);
    groupsByDag.set(dag, taken);
  }

  get defaultArgs(): TaskDefaults {
    return this.#defaultArgs;
  }

  /** Airflow's `child_id`: `'<group>.<label>'` when the group prefixes, else the label alone. */
  childId(label: string): string {
    return this.prefixGroupId ? `${this.groupId}.${label}` : label;
  }

  /** The ids of the group's tasks, nested groups' included, in creation order. */
  get taskIds(): readonly string[] {
    return this.#taskIds;
  }

  get tasks(): BaseOperator[] {
    return this.#taskIds.map((id) => this.dag.getTask(id));
  }

  addTask(taskId: string): void {
    this.#taskIds.push(taskId);
    this.parent?.addTask(taskId);
  }

  /** Tasks of the group with no upstream inside it: where a dependency on the group lands. */
  get roots(): BaseOperator[] {
    const inside = new Set(this.#taskIds);
    return this.tasks.filter((task) => ![...task.upstreamTaskIds].some((id) => inside.has(id)));
  }

  /** Tasks of the group with no downstream inside it: where a dependency from the group starts. */
  get leaves(): BaseOperator[] {
    const inside = new Set(this.#taskIds);
    return this.tasks.filter((task) => ![...task.downstreamTaskIds].some((id) => inside.has(id)));
  }

  dependencyRoots(): readonly BaseOperator[] {
    return this.#nonEmpty(this.roots);
  }

  dependencyLeaves(): readonly BaseOperator[] {
    return this.#nonEmpty(this.leaves);
  }

  /** `group >> targets`: the targets run after the group's leaves. Returns the argument. */
  setDownstream<T extends Dependencies>(targets: T): T {
    link(this, targets);
    return targets;
  }

  /** `targets >> group`: the group's roots run after the targets. Returns the argument. */
  setUpstream<T extends Dependencies>(targets: T): T {
    link(targets, this);
    return targets;
  }

  #nonEmpty(tasks: BaseOperator[]): BaseOperator[] {
    if (this.#taskIds.length === 0) {
      throw new TypeError(`task group '${this.groupId}' of DAG '${this.dag.dagId}' has no tasks, so nothing can depend on it`);
    }
    return tasks;
  }
}

/**
 * `taskGroup('extract', () => { ... })` or `taskGroup('extract', { defaultArgs }, () => { ... })`:
 * operators (and TaskFlow tasks, and groups) created in the callback join the group. Returns the
 * group, to use as a dependency.
 */
export function taskGroup(groupId: string, define: () => void): TaskGroup;
export function taskGroup(groupId: string, options: TaskGroupOptions, define: () => void): TaskGroup;
export function taskGroup(groupId: string, second: TaskGroupOptions | (() => void), third?: () => void): TaskGroup {
  const define = typeof second === 'function' ? second : third;
  const options = typeof second === 'function' ? {} : second;
  if (typeof define !== 'function') throw new TypeError(`taskGroup('${groupId}') needs a callback that creates its tasks`);
  const dag = currentDag();
  if (!dag) throw new TypeError(`task group '${groupId}' was created outside a DAG: call taskGroup() inside dag({...}, () => { ... })`);
  const scope = currentGroupScope(dag);
  const parent = scope instanceof TaskGroup ? scope : undefined;
  const group = new TaskGroup(groupId, options, dag, parent);
  const result: unknown = runInGroupScope<unknown>(group satisfies GroupScope, define);
  if (result instanceof Promise) throw new TypeError(`the callback of task group '${group.groupId}' must be synchronous: create its tasks directly in it`);
  return group;
}
