import { AsyncLocalStorage } from 'node:async_hooks';
import type { BaseOperator, TaskDefaults } from './base-operator.ts';

export interface DagOptions {
  /** Letters, digits, `_`, `-` and `.`; at most 250 characters. */
  dagId: string;
  description?: string;
  tags?: string[];
  /** Applied to every operator of the DAG unless the operator sets the option itself. */
  defaultArgs?: TaskDefaults;
}

const DAG_BRAND = Symbol.for('tsflow.dag');
const ID_PATTERN = /^[A-Za-z0-9_.-]{1,250}$/;

/** The DAG whose callback is running: operators constructed inside it join that DAG. */
const dagContext = new AsyncLocalStorage<Dag>();

export function assertValidId(kind: string, id: unknown): asserts id is string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
    throw new TypeError(
      `${kind} ${JSON.stringify(id)} is not valid: use 1-250 letters, digits, '_', '-' or '.'`,
    );
  }
}

export class Dag {
  readonly [DAG_BRAND] = true;
  readonly dagId: string;
  readonly description: string | undefined;
  readonly tags: readonly string[];
  readonly defaultArgs: TaskDefaults;
  readonly #tasks = new Map<string, BaseOperator>();
  /** Set by the DAG loader: the file that defined this DAG. */
  fileloc: string | undefined;

  constructor(options: DagOptions) {
    assertValidId('dagId', options.dagId);
    this.dagId = options.dagId;
    this.description = options.description;
    this.tags = [...(options.tags ?? [])];
    this.defaultArgs = { ...(options.defaultArgs ?? {}) };
  }

  get tasks(): ReadonlyMap<string, BaseOperator> {
    return this.#tasks;
  }

  getTask(taskId: string): BaseOperator {
    const task = this.#tasks.get(taskId);
    if (!task) {
      const known = [...this.#tasks.keys()].join(', ') || 'none';
      throw new TaskNotFoundError(`DAG '${this.dagId}' has no task '${taskId}' (its tasks: ${known})`);
    }
    return task;
  }

  /** Called by `BaseOperator`'s constructor; a second task with the same id is an error. */
  addTask(task: BaseOperator): void {
    if (this.#tasks.has(task.taskId)) {
      throw new TypeError(`DAG '${this.dagId}' already has a task '${task.taskId}'; task ids must be unique`);
    }
    this.#tasks.set(task.taskId, task);
  }

  /** Throws when the dependencies form a cycle, naming the tasks on it. */
  validate(): void {
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (taskId: string): void => {
      const mark = state.get(taskId);
      if (mark === 'done') return;
      if (mark === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(taskId)), taskId].join(' >> ');
        throw new TypeError(`DAG '${this.dagId}' has a cycle: ${cycle}`);
      }
      state.set(taskId, 'visiting');
      stack.push(taskId);
      for (const next of this.getTask(taskId).downstreamTaskIds) visit(next);
      stack.pop();
      state.set(taskId, 'done');
    };
    for (const taskId of this.#tasks.keys()) visit(taskId);
  }
}

export class TaskNotFoundError extends Error {
  override name = 'TaskNotFoundError';
}

/**
 * Defines a DAG: operators constructed while `define` runs belong to it (Airflow's `with DAG(...)`).
 * A DAG file exports the result: `export default dag({ dagId: 'etl' }, () => { ... })`.
 */
export function dag(options: DagOptions, define: () => void): Dag {
  const created = new Dag(options);
  const result: unknown = dagContext.run(created, define);
  if (result instanceof Promise) {
    throw new TypeError(`the callback of dag '${created.dagId}' must be synchronous: construct operators directly in it`);
  }
  created.validate();
  return created;
}

/** The DAG being defined, if an operator is constructed inside a `dag()` callback. */
export function currentDag(): Dag | undefined {
  return dagContext.getStore();
}

/** True for DAG objects, even when created by another copy of tsflow. */
export function isDag(value: unknown): value is Dag {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DAG_BRAND] === true;
}
