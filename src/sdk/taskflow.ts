import { BaseOperator, type TaskDefaults } from './base-operator.ts';
import type { TaskContext } from './context.ts';
import { currentDag, type Dag } from './dag.ts';
import { currentGroupScope } from './group-scope.ts';
import { toJsonValue, type JsonValue } from './json.ts';
import { TaskFlowBranchOperator, type BranchBody, type TaskBranchOptions } from './operators/taskflow-branch.ts';
import { BaseSensorOperator, type BaseSensorOptions, type PokeResult } from './sensors/base-sensor.ts';
import { dictInput, listInput, MappedOperator } from './mapped-operator.ts';
import { findXComArgs, resolveXComArgs, XComArg } from './xcom-arg.ts';

/*
 * TaskFlow (Airflow's `@task`): a function becomes a task factory. Calling it inside `dag()` creates
 * the task and returns an `XComArg` for its return value; passing XComArgs as arguments to another
 * task function makes it run after their producers and hands it their values, pulled at run time.
 */

export interface TaskFunctionOptions extends TaskDefaults {
  /** @default the function's name; a second call in the same DAG (or group) gets `name__1`, `name__2`, … */
  taskId?: string;
  /**
   * The function returns an object whose keys are pushed each as its own XCom (as well as the whole
   * as `return_value`), so `result.get('key')` feeds one of them to another task. @default false
   */
  multipleOutputs?: boolean;
  /** The DAG to join; by default the one whose `dag()` callback is running. */
  dag?: Dag;
}

/** Each parameter accepts its value, or a reference to an upstream task's XCom of that type. */
export type XComArgsOf<A extends readonly unknown[]> = { [K in keyof A]: A[K] | XComArg<A[K]> };

/** What `task()` returns: call it inside `dag()` to create a task; the result is its XCom. */
export interface TaskFunction<A extends unknown[], R> {
  (...args: XComArgsOf<A>): XComArg<R>;
  /** A copy with some options replaced (Airflow's `.override()`), e.g. another `taskId` for a second use. */
  override(options: TaskFunctionOptions): TaskFunction<A, R>;
  /**
   * Dynamic task mapping, for a function whose one argument is an object: `fn.partial({ shared }).expand({ key: [...] })`
   * runs it once per value of `key` (an upstream XCom list works too). The result is the list of the runs' values, in map-index order.
   */
  partial(shared: MappingArgs<A>): TaskFunctionPartial<A, R>;
  /** `fn.partial({}).expand(args)`. */
  expand(args: ExpandOf<MappingArgs<A>>): XComArg<R[]>;
  /** `fn.partial({}).expandKwargs(list)`: one run per object of the list. */
  expandKwargs(kwargs: readonly MappingArgs<A>[] | XComArg<readonly object[]>): XComArg<R[]>;
}

/** The object argument of a function that mapping can call. */
type MappingArgs<A extends unknown[]> = A extends [infer O] ? Partial<O> : never;

/** For each mapped key, its list of values or an upstream XCom of that list. */
type ExpandOf<O> = { [K in keyof O]?: readonly O[K][] | XComArg<readonly O[K][]> | XComArg<O[K][]> };

export interface TaskFunctionPartial<A extends unknown[], R> {
  expand(args: ExpandOf<MappingArgs<A>>): XComArg<R[]>;
  expandKwargs(kwargs: readonly MappingArgs<A>[] | XComArg<readonly object[]>): XComArg<R[]>;
}

type TaskBody<A extends unknown[], R> = (context: TaskContext, ...args: A) => R | Promise<R>;

/** The operator behind a TaskFlow task: resolves its XComArg arguments, then calls the function. */
export class TaskFlowOperator<A extends unknown[] = unknown[], R = unknown> extends BaseOperator<R> {
  /** The arguments' strings are templates (Airflow's `op_args`); XComArg values are not rendered. */
  static override readonly templateFields: readonly string[] = ['opArgs'];
  readonly multipleOutputs: boolean;
  /** The arguments the function is called with after the context: values and XComArgs. */
  readonly opArgs: readonly unknown[];
  readonly #fn: TaskBody<A, R>;

  constructor(options: TaskFunctionOptions & { taskId: string }, fn: TaskBody<A, R>, args: readonly unknown[]) {
    super(withoutTaskFlowOptions(options));
    this.multipleOutputs = options.multipleOutputs ?? false;
    this.#fn = fn;
    this.opArgs = args;
    for (const arg of findXComArgs(args)) arg.operator.setDownstream(this);
  }

  override async execute(context: TaskContext): Promise<R> {
    const args = (await resolveXComArgs(this.opArgs, context)) as A;
    const result = await this.#fn(context, ...args);
    if (this.multipleOutputs) await pushOutputs(this.taskId, result, context);
    return result;
  }
}

/** `multipleOutputs`: each key of the returned object becomes an XCom of its own; nothing for null or undefined. */
async function pushOutputs(taskId: string, result: unknown, context: TaskContext): Promise<void> {
  if (result === undefined || result === null) return;
  if (typeof result !== 'object' || Array.isArray(result)) {
    throw new TypeError(`task '${taskId}' has multipleOutputs: true, so it must return an object (or nothing), but it returned ${Array.isArray(result) ? 'an array' : typeof result}`);
  }
  for (const [key, value] of Object.entries(result)) await context.xcomPush(key, value);
}

function withoutTaskFlowOptions<T extends { multipleOutputs?: boolean }>(options: T): Omit<T, 'multipleOutputs'> {
  const { multipleOutputs: _multipleOutputs, ...rest } = options;
  return rest;
}

/**
 * The id a new TaskFlow task gets: `label`, or `label__1`, `label__2`, … when the DAG already has a
 * task of that id in the current group (Airflow's `get_unique_task_id`).
 */
export function uniqueTaskLabel(dag: Dag | undefined, label: string): string {
  if (!dag) return label;
  const scope = currentGroupScope(dag);
  const full = (l: string): string => (scope ? scope.childId(l) : l);
  if (!dag.tasks.has(full(label))) return label;
  const core = label.replace(/__\d+$/, '');
  for (let n = 1; ; n++) {
    const candidate = `${core}__${n}`;
    if (!dag.tasks.has(full(candidate))) return candidate;
  }
}

function baseLabel(options: { taskId?: string }, fn: { name: string }, kind: string): string {
  const label = options.taskId ?? fn.name;
  if (!label) {
    throw new TypeError(`${kind}() needs a taskId when its function has no name: ${kind}({ taskId: 'extract' }, async (ctx) => ...) or ${kind}(async function extract(ctx) { ... })`);
  }
  return label;
}

function makeTaskFunction<A extends unknown[], R>(
  options: TaskFunctionOptions,
  create: (options: TaskFunctionOptions & { taskId: string }, args: readonly unknown[]) => BaseOperator,
  label: string,
): TaskFunction<A, R> {
  const call = (...args: XComArgsOf<A>): XComArg<R> => {
    const taskId = uniqueTaskLabel(options.dag ?? currentDag(), label);
    return new XComArg<R>(create({ ...options, taskId }, args));
  };
  const partial = (shared: MappingArgs<A>): TaskFunctionPartial<A, R> => {
    const mapped = (input: (taskId: string) => ConstructorParameters<typeof MappedOperator>[1]): XComArg<R[]> => {
      const owner = options.dag ?? currentDag();
      const taskId = uniqueTaskLabel(owner, label);
      const { multipleOutputs: _multipleOutputs, ...settings } = options;
      const operator = new MappedOperator(
        {
          ...settings,
          taskId,
          operatorName: 'TaskFlowOperator',
          shared: shared as Record<string, unknown>,
          build: (values, id, dag) => create({ ...options, taskId: id, dag }, [values]),
        },
        input(taskId),
      );
      return new XComArg<R[]>(operator);
    };
    return {
      expand: (args) => mapped((taskId) => dictInput(taskId, shared as object, args)),
      expandKwargs: (kwargs) => mapped((taskId) => listInput(taskId, kwargs)),
    };
  };
  return Object.assign(call, {
    override: (changes: TaskFunctionOptions) => makeTaskFunction<A, R>({ ...options, ...changes }, create, changes.taskId ?? label),
    partial,
    expand: (args: ExpandOf<MappingArgs<A>>) => partial({} as MappingArgs<A>).expand(args),
    expandKwargs: (kwargs: readonly MappingArgs<A>[] | XComArg<readonly object[]>) => partial({} as MappingArgs<A>).expandKwargs(kwargs),
  });
}

function taskFunction<A extends unknown[], R>(fn: TaskBody<A, R>): TaskFunction<A, Awaited<R>>;
function taskFunction<A extends unknown[], R>(options: TaskFunctionOptions, fn: TaskBody<A, R>): TaskFunction<A, Awaited<R>>;
function taskFunction<A extends unknown[], R>(first: TaskFunctionOptions | TaskBody<A, R>, second?: TaskBody<A, R>): TaskFunction<A, Awaited<R>> {
  const fn = typeof first === 'function' ? first : second;
  const options = typeof first === 'function' ? {} : first;
  if (typeof fn !== 'function') throw new TypeError('task() needs the function the task runs: task({ taskId }, async (ctx, ...args) => value)');
  const label = baseLabel(options, fn, 'task');
  return makeTaskFunction<A, Awaited<R>>(options, (o, args) => new TaskFlowOperator<A, R>(o, fn, args), label);
}

/** What a `task.sensor` function returns: done or not, and optionally the value to push once done (Airflow's `PokeReturnValue`). */
export type SensorReturn<V> = boolean | { isDone: boolean; xcomValue?: V };

export interface TaskSensorOptions extends Omit<BaseSensorOptions, 'taskId' | 'deferrable' | 'startFromTrigger'> {
  taskId?: string;
}

type SensorBody<A extends unknown[], V> = (context: TaskContext, ...args: A) => SensorReturn<V> | Promise<SensorReturn<V>>;

/** The sensor behind `task.sensor`: each poke resolves the arguments and calls the function. Never deferrable (it has no trigger). */
export class TaskFlowSensor<A extends unknown[] = unknown[], V = unknown> extends BaseSensorOperator {
  /** The arguments' strings are templates, as a TaskFlow task's; XComArg values are not rendered. */
  static override readonly templateFields: readonly string[] = ['opArgs'];
  readonly opArgs: readonly unknown[];
  readonly #fn: SensorBody<A, V>;

  constructor(options: TaskSensorOptions & { taskId: string }, fn: SensorBody<A, V>, args: readonly unknown[]) {
    super({ ...options, deferrable: false });
    this.#fn = fn;
    this.opArgs = args;
    for (const arg of findXComArgs(args)) arg.operator.setDownstream(this);
  }

  override async poke(context: TaskContext): Promise<PokeResult> {
    const args = (await resolveXComArgs(this.opArgs, context)) as A;
    const result = await this.#fn(context, ...args);
    if (typeof result === 'boolean') return result;
    if (typeof result !== 'object' || result === null || typeof result.isDone !== 'boolean') {
      throw new TypeError(`sensor '${this.taskId}' must return a boolean or { isDone: boolean, xcomValue? }, got ${JSON.stringify(result)}`);
    }
    if (!result.isDone || result.xcomValue === undefined) return { done: result.isDone };
    return { done: true, value: toJsonValue(result.xcomValue, `the xcomValue of sensor '${this.taskId}'`) as JsonValue };
  }
}

function sensorFunction<A extends unknown[], V = undefined>(options: TaskSensorOptions, fn: SensorBody<A, V>): TaskFunction<A, V | undefined> {
  if (typeof fn !== 'function') throw new TypeError('task.sensor() needs the function that pokes: task.sensor({ pokeInterval: 30 }, async (ctx) => ({ isDone, xcomValue }))');
  const label = baseLabel(options, fn, 'task.sensor');
  return makeTaskFunction<A, V | undefined>(options, (o, args) => new TaskFlowSensor<A, V>(o, fn, args), label);
}

function branchFunction<A extends unknown[]>(fn: BranchBody<A>): TaskFunction<A, string[]>;
function branchFunction<A extends unknown[]>(options: TaskBranchOptions, fn: BranchBody<A>): TaskFunction<A, string[]>;
function branchFunction<A extends unknown[]>(first: TaskBranchOptions | BranchBody<A>, second?: BranchBody<A>): TaskFunction<A, string[]> {
  const fn = typeof first === 'function' ? first : second;
  const options = typeof first === 'function' ? {} : first;
  if (typeof fn !== 'function') throw new TypeError("task.branch() needs the function that picks the branch: task.branch({ taskId }, (ctx, ...args) => 'task_id')");
  const label = baseLabel(options, fn, 'task.branch');
  return makeTaskFunction<A, string[]>(options, (o, args) => new TaskFlowBranchOperator<A>(o, fn, args), label);
}

/**
 * `task(options?, fn)`: a TaskFlow task function. `task.sensor(options, fn)`: one that pokes until
 * `fn` returns true or `{ isDone: true, xcomValue }`, with the sensors' pokeInterval, timeout, mode
 * and softFail. `task.branch(options?, fn)`: one that follows the task ids (or task group ids) `fn`
 * returns and skips the other direct downstream tasks.
 */
export const task = Object.assign(taskFunction, { sensor: sensorFunction, branch: branchFunction });
