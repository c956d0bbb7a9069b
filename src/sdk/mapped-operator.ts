import {
  BaseOperator,
  buildDetached,
  installMappingFactory,
  type BaseOperatorOptions,
  type ExpandArgs,
  type OperatorPartial,
  type PartialOptions,
  type TaskDefaults,
} from './base-operator.ts';
import type { TaskContext } from './context.ts';
import type { Dag } from './dag.ts';
import type { JsonObject } from './json.ts';
import { findXComArgs, isXComArg, resolveXComArgs } from './xcom-arg.ts';

/*
 * Dynamic task mapping (Airflow's `MappedOperator`): one task of the DAG that runs once per map
 * index. The scheduler creates the map indexes — when the run starts for literal lists, once the
 * upstream succeeded for an XCom list — and each map index builds its own operator at run time from
 * the shared (partial) options and its values.
 */

/** Where one mapped option's values come from, as the scheduler needs it (serialized with the DAG). */
export type SerializedExpandSource = { readonly literal: number } | { readonly xcom: { readonly taskId: string; readonly key: string } };

export interface SerializedExpansion {
  /** 'dict': `expand` (the product of the options' lists, the last option varying fastest); 'list': `expandKwargs`. */
  readonly kind: 'dict' | 'list';
  readonly sources: readonly SerializedExpandSource[];
}

type ExpandInput = { kind: 'dict'; entries: readonly (readonly [string, unknown])[] } | { kind: 'list'; value: unknown };

/** Builds one map index's operator from the shared values merged with its own. */
export type UnmappedBuilder = (values: Record<string, unknown>, taskId: string, dag: Dag) => BaseOperator;

export interface MappedOperatorOptions extends BaseOperatorOptions {
  /** The operator's class name (or 'TaskFlowOperator'), for display. */
  operatorName: string;
  /** What every map index shares (XComArgs in it are resolved at run time). */
  shared: Record<string, unknown>;
  build: UnmappedBuilder;
}

/** Map index `index` out of a product of lists: the last list varies fastest (Airflow's `DictOfListsExpandInput`). */
export function pickCombination(lists: readonly (readonly unknown[])[], index: number): unknown[] {
  const picked: unknown[] = new Array<unknown>(lists.length);
  let rest = index;
  for (let k = lists.length - 1; k >= 0; k--) {
    const list = lists[k] as readonly unknown[];
    picked[k] = list[rest % list.length];
    rest = Math.floor(rest / list.length);
  }
  return picked;
}

export class MappedOperator extends BaseOperator {
  readonly operatorName: string;
  readonly #input: ExpandInput;
  readonly #shared: Record<string, unknown>;
  readonly #build: UnmappedBuilder;

  constructor(options: MappedOperatorOptions, input: ExpandInput) {
    const { operatorName, shared, build, ...settings } = options;
    super(settings);
    this.operatorName = operatorName;
    this.#input = input;
    this.#shared = shared;
    this.#build = build;
    const values = input.kind === 'dict' ? input.entries.map(([, v]) => v) : [input.value];
    for (const arg of findXComArgs([shared, values])) arg.operator.setDownstream(this);
  }

  /** How the scheduler counts the map indexes. */
  get expansion(): SerializedExpansion {
    const source = (value: unknown): SerializedExpandSource =>
      isXComArg(value) ? { xcom: { taskId: value.taskId, key: value.key } } : { literal: (value as readonly unknown[]).length };
    return this.#input.kind === 'dict'
      ? { kind: 'dict', sources: this.#input.entries.map(([, v]) => source(v)) }
      : { kind: 'list', sources: [source(this.#input.value)] };
  }

  override async execute(context: TaskContext): Promise<unknown> {
    return (await this.unmap(context)).execute(context);
  }

  override resumeExecution(context: TaskContext, method: string, nextKwargs: JsonObject): unknown {
    return this.unmap(context).then((task) => task.resumeExecution(context, method, nextKwargs));
  }

  /** The operator of the context's map index: the shared values and this index's, resolved from this run's XComs where needed. */
  async unmap(context: TaskContext): Promise<BaseOperator> {
    const index = context.mapIndex;
    if (!Number.isInteger(index) || index < 0) {
      throw new Error(`mapped task '${this.taskId}' ran without a map index: the scheduler expands it first (got ${index})`);
    }
    const shared = (await resolveXComArgs(this.#shared, context)) as Record<string, unknown>;
    const own = await this.#valuesAt(index, context);
    return buildDetached(this.taskId, () => this.#build({ ...shared, ...own }, this.taskId, this.dag));
  }

  async #valuesAt(index: number, context: TaskContext): Promise<Record<string, unknown>> {
    if (this.#input.kind === 'list') {
      const list = mappable(await resolveXComArgs(this.#input.value, context), this.taskId, 'expandKwargs');
      const item = list[index];
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        throw new TypeError(`mapped task '${this.taskId}': expandKwargs needs a list of objects, but item ${index} is ${JSON.stringify(item)}`);
      }
      return item as Record<string, unknown>;
    }
    const keys = this.#input.entries.map(([k]) => k);
    const lists: unknown[][] = [];
    for (const [key, value] of this.#input.entries) lists.push(mappable(await resolveXComArgs(value, context), this.taskId, key));
    const total = lists.reduce((n, l) => n * l.length, 1);
    if (index >= total) throw new RangeError(`mapped task '${this.taskId}' has ${total} map indexes now, not ${index + 1}: clear it to expand it again`);
    const picked = pickCombination(lists, index);
    return Object.fromEntries(keys.map((k, i) => [k, picked[i]]));
  }
}

function mappable(value: unknown, taskId: string, what: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`mapped task '${taskId}' expands '${what}' over ${value === undefined ? 'nothing' : JSON.stringify(value)}: it must be a list`);
  }
  return value;
}

/** The ExpandInput of `expand(args)`, checked: lists or XComArgs, none also given to `partial`. */
export function dictInput(taskId: string, shared: object, args: object): ExpandInput {
  const entries = Object.entries(args).filter(([, v]) => v !== undefined);
  if (entries.length === 0) throw new TypeError(`mapped task '${taskId}': expand() needs at least one option to map over`);
  for (const [key, value] of entries) {
    if (key === 'taskId' || key === 'dag') throw new TypeError(`mapped task '${taskId}': '${key}' cannot be mapped`);
    if (key in shared) throw new TypeError(`mapped task '${taskId}': '${key}' is given both to partial() and to expand(); give it to one`);
    if (!Array.isArray(value) && !isXComArg(value)) {
      throw new TypeError(`mapped task '${taskId}': expand({ ${key} }) needs a list or an upstream task's XCom, got ${JSON.stringify(value)}`);
    }
  }
  return { kind: 'dict', entries };
}

export function listInput(taskId: string, kwargs: unknown): ExpandInput {
  if (!Array.isArray(kwargs) && !isXComArg(kwargs)) {
    throw new TypeError(`mapped task '${taskId}': expandKwargs() needs a list of objects or an upstream task's XCom, got ${JSON.stringify(kwargs)}`);
  }
  return { kind: 'list', value: kwargs };
}

/** `Operator.partial(options)`. */
function operatorPartial<O extends BaseOperatorOptions>(build: (options: O) => BaseOperator, operatorName: string, partial: PartialOptions<O>): OperatorPartial<O> {
  const { taskId, dag, ...shared } = partial as PartialOptions<O> & { dag?: Dag };
  const make = (input: ExpandInput): BaseOperator =>
    new MappedOperator(
      {
        ...(shared as TaskDefaults),
        taskId,
        ...(dag && { dag }),
        operatorName,
        shared,
        build: (values, id, owner) => build({ ...values, taskId: id, dag: owner } as unknown as O),
      },
      input,
    );
  return {
    expand: (args: ExpandArgs<O>) => make(dictInput(taskId, shared, args)),
    expandKwargs: (kwargs) => make(listInput(taskId, kwargs)),
  };
}

installMappingFactory(operatorPartial);
