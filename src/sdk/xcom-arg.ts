import type { BaseOperator } from './base-operator.ts';
import type { TaskContext } from './context.ts';
import { link, type Dependencies, type DependencyNode } from './dependencies.ts';

const XCOM_ARG_BRAND = Symbol.for('tsflow.xcom-arg');
const RETURN_VALUE = 'return_value';

/** Carries the value's type at compile time only; never set. */
declare const VALUE_TYPE: unique symbol;

/**
 * A reference to an XCom a task will push (Airflow's `XComArg`): what calling a TaskFlow task
 * returns. Passed to another TaskFlow task it makes that task run after the producer and receive the
 * value; `T` is the value's type, so a reference to a string cannot feed a number parameter.
 */
export class XComArg<T> implements DependencyNode {
  declare readonly [VALUE_TYPE]: T;
  readonly [XCOM_ARG_BRAND] = true;
  /** The task that pushes the value. */
  readonly operator: BaseOperator;
  /** @default 'return_value' */
  readonly key: string;

  constructor(operator: BaseOperator, key: string = RETURN_VALUE) {
    this.operator = operator;
    this.key = key;
  }

  get taskId(): string {
    return this.operator.taskId;
  }

  /**
   * One key of a task with `multipleOutputs: true` (Airflow's `xcom_arg["key"]`), which pushes each
   * key of the object it returns as its own XCom.
   */
  get<K extends keyof T & string>(key: K): XComArg<T[K]> {
    const multiple = (this.operator as { multipleOutputs?: unknown }).multipleOutputs === true;
    if (this.key !== RETURN_VALUE || !multiple) {
      throw new TypeError(`cannot take key '${key}' of the XCom '${this.key}' of task '${this.taskId}': only a task with multipleOutputs: true pushes its result's keys as XComs`);
    }
    return new XComArg<T[K]>(this.operator, key);
  }

  /** The value, pulled from this run's XComs. A missing `return_value` is `undefined`; a missing other key is an error. */
  async resolve(context: TaskContext): Promise<T> {
    const value = await context.xcomPull(this.taskId, this.key);
    if (value === undefined && this.key !== RETURN_VALUE) {
      throw new XComNotFound(`task '${context.taskId}' needs the XCom '${this.key}' of task '${this.taskId}', which that task did not push in run '${context.runId}'`);
    }
    return value as T;
  }

  dependencyRoots(): readonly BaseOperator[] {
    return [this.operator];
  }

  dependencyLeaves(): readonly BaseOperator[] {
    return [this.operator];
  }

  /** `producer >> targets`. Returns the argument. */
  setDownstream<D extends Dependencies>(targets: D): D {
    link(this, targets);
    return targets;
  }

  /** `targets >> producer`. Returns the argument. */
  setUpstream<D extends Dependencies>(targets: D): D {
    link(targets, this);
    return targets;
  }
}

/** A task needed an XCom (other than a return value) its upstream never pushed (Airflow's `XComNotFound`). */
export class XComNotFound extends Error {
  override name = 'XComNotFound';
}

/** True for an XComArg, even one made by another copy of tsflow. */
export function isXComArg(value: unknown): value is XComArg<unknown> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[XCOM_ARG_BRAND] === true;
}

/** Every XComArg in `value`: itself, or inside arrays and plain objects. */
export function findXComArgs(value: unknown, found: XComArg<unknown>[] = []): XComArg<unknown>[] {
  if (isXComArg(value)) found.push(value);
  else if (Array.isArray(value)) for (const item of value) findXComArgs(item, found);
  else if (isPlainObject(value)) for (const item of Object.values(value)) findXComArgs(item, found);
  return found;
}

/** `value` with every XComArg in it (at any depth of arrays and plain objects) replaced by its pulled value. */
export async function resolveXComArgs(value: unknown, context: TaskContext): Promise<unknown> {
  if (isXComArg(value)) return value.resolve(context);
  if (Array.isArray(value)) return Promise.all(value.map((item) => resolveXComArgs(item, context)));
  if (isPlainObject(value)) {
    const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await resolveXComArgs(v, context)] as const));
    return Object.fromEntries(entries);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
