import type { Duration } from 'luxon';
import type { TaskContext } from './context.ts';
import { assertValidId, currentDag, type Dag } from './dag.ts';
import { toDuration, type DurationInput } from './duration.ts';
import { TaskDeferralError, TaskDeferralTimeout } from './errors.ts';
import { currentGroupScope } from './group-scope.ts';
import type { JsonObject, JsonValue } from './json.ts';
import { EVENT_KEY, FAIL_METHOD } from './resume-keys.ts';
import { TaskDeferred, type DeferOptions } from './task-deferred.ts';
import { toTriggerRule, type TriggerRule } from './trigger-rule.ts';
import { XComArg } from './xcom-arg.ts';

export { FAIL_METHOD };

/** The pool of tasks that name none (Airflow's `default_pool`). */
export const DEFAULT_POOL = 'default_pool';

export type TaskCallback = (context: TaskContext, error?: Error) => void | Promise<void>;

/** Options every operator accepts; a DAG's `defaultArgs` may set any of them. */
export interface TaskDefaults {
  /** How many times to retry after a failure. @default 0 */
  retries?: number;
  /** Wait before a retry. @default 300 seconds */
  retryDelay?: DurationInput;
  /** Double the delay on each retry (with jitter), up to `maxRetryDelay`. @default false */
  retryExponentialBackoff?: boolean;
  /** @default 24 hours */
  maxRetryDelay?: DurationInput;
  /** Fail the try when it runs longer, measured from its first start (also caps deferrals). */
  executionTimeout?: DurationInput;
  /** Higher runs first when slots are scarce. @default 1 */
  priorityWeight?: number;
  /** @default 'default' */
  queue?: string;
  /**
   * The pool whose slots the task occupies while queued or running (`tsflow pools set`); a task
   * naming a pool that does not exist waits, and the scheduler warns. @default 'default_pool'
   */
  pool?: string;
  /** How many of the pool's slots the task takes: a whole number ≥ 1. @default 1 */
  poolSlots?: number;
  /**
   * When the task runs, given how its upstream tasks ended (`'all_done'`, `'none_failed'`, …; see
   * the README's "Trigger rules and branching"). @default 'all_success'
   */
  triggerRule?: TriggerRule;
  /**
   * At most this many task instances of the task — for a mapped task, its map indexes — queued or
   * running at once, across the DAG's runs (Airflow's `max_active_tis_per_dag`). @default no limit
   */
  maxActiveTisPerDag?: number;
  onSuccessCallback?: TaskCallback;
  onFailureCallback?: TaskCallback;
  onRetryCallback?: TaskCallback;
}

export interface BaseOperatorOptions extends TaskDefaults {
  taskId: string;
  /** The DAG to join; by default the one whose `dag()` callback is running. */
  dag?: Dag;
}

/** Resolved task settings, as the scheduler and runner use them. */
export interface TaskSettings {
  readonly retries: number;
  readonly retryDelay: Duration;
  readonly retryExponentialBackoff: boolean;
  readonly maxRetryDelay: Duration;
  readonly executionTimeout: Duration | undefined;
  readonly priorityWeight: number;
  readonly queue: string;
  readonly pool: string;
  readonly poolSlots: number;
  readonly triggerRule: TriggerRule;
  readonly maxActiveTisPerDag: number | null;
}

/** What `Operator.partial(options)` takes: the operator's options, all optional but `taskId`. */
export type PartialOptions<O> = Partial<O> & { taskId: string };

/** What `expand` takes: for each option to map, the list of its values, or an upstream XCom holding that list. */
export type ExpandArgs<O> = { [K in keyof O]?: readonly O[K][] | XComArg<readonly O[K][]> };

/**
 * `Operator.partial(options)`: the options every map index shares; `.expand({ option: [...] })` or
 * `.expandKwargs([...])` makes the mapped task (Airflow's `OperatorPartial`).
 */
export interface OperatorPartial<O> {
  expand(args: ExpandArgs<O>): BaseOperator;
  expandKwargs(kwargs: readonly Partial<O>[] | XComArg<readonly object[]>): BaseOperator;
}

type MappingFactory = <O extends BaseOperatorOptions>(build: (options: O) => BaseOperator, operatorName: string, partial: PartialOptions<O>) => OperatorPartial<O>;
let mappingFactory: MappingFactory | undefined;

/** Installed by src/sdk/mapped-operator.ts (which extends this class, so cannot be imported here). */
export function installMappingFactory(factory: MappingFactory): void {
  mappingFactory = factory;
}

/** Set while a map index's operator is built: it is not a task of the DAG, only the mapped task's stand-in for one run. */
let detached: { taskId: string } | undefined;

/** Builds an operator that is not added to its DAG (nor its group): one map index of a mapped task, at run time. */
export function buildDetached<T>(taskId: string, build: () => T): T {
  const outer = detached;
  detached = { taskId };
  try {
    return build();
  } finally {
    detached = outer;
  }
}

/**
 * The base of every task. Subclasses implement `execute(context)`; a task that has to wait calls
 * `this.defer({ trigger })` and is resumed later, in a new run of the task, at `executeComplete`
 * (or the method it names) with the trigger's event.
 */
export abstract class BaseOperator<R = unknown> {
  /**
   * The fields rendered as templates (Nunjucks, Jinja's syntax) right before the task's code runs,
   * with Airflow's context names: `'echo {{ ds }} {{ params.x }}'`. Strings are rendered, arrays and
   * plain objects item by item. A subclass lists its own (`static override readonly templateFields =
   * ['query']`); an instance property of the same name takes precedence.
   */
  static readonly templateFields: readonly string[] = [];
  readonly taskId: string;
  readonly dag: Dag;
  readonly settings: TaskSettings;
  readonly callbacks: { onSuccess?: TaskCallback; onFailure?: TaskCallback; onRetry?: TaskCallback };
  readonly #upstream = new Set<string>();
  readonly #downstream = new Set<string>();

  /**
   * Dynamic task mapping: `BashOperator.partial({ taskId, ...shared }).expand({ bashCommand: [...] })`
   * makes one task that runs once per value (per combination, for several options) — its map
   * indexes — the list given here, or an upstream task's XCom list resolved at run time.
   */
  static partial<O extends BaseOperatorOptions>(this: new (options: O) => BaseOperator, options: PartialOptions<O>): OperatorPartial<O> {
    if (!mappingFactory) throw new Error("dynamic task mapping is not loaded: import BaseOperator from 'tsflow'");
    return mappingFactory<O>((o) => new this(o), this.name, options);
  }

  constructor(options: BaseOperatorOptions) {
    const unmapping = detached;
    if (unmapping) {
      // One map index of a mapped task: the mapped task's id and settings, and no place in the DAG.
      const owner = options.dag as Dag;
      this.taskId = unmapping.taskId;
      this.dag = owner;
      const merged: TaskDefaults = { ...owner.defaultArgs, ...withoutUndefined(options) };
      this.settings = resolveSettings(this.taskId, merged);
      this.callbacks = { onSuccess: merged.onSuccessCallback, onFailure: merged.onFailureCallback, onRetry: merged.onRetryCallback };
      return;
    }
    assertValidId('taskId', options.taskId);
    const owner = options.dag ?? currentDag();
    if (!owner) {
      throw new TypeError(`task '${options.taskId}' was created outside a DAG: construct it inside dag({...}, () => { ... })`);
    }
    // Inside taskGroup(): the id gets the group's prefix, and the group's defaults sit between the DAG's and the task's.
    const group = currentGroupScope(owner);
    const taskId = group ? group.childId(options.taskId) : options.taskId;
    assertValidId('taskId', taskId);
    const merged: TaskDefaults = { ...owner.defaultArgs, ...group?.defaultArgs, ...withoutUndefined(options) };
    this.taskId = taskId;
    this.dag = owner;
    this.settings = resolveSettings(taskId, merged);
    this.callbacks = {
      onSuccess: merged.onSuccessCallback,
      onFailure: merged.onFailureCallback,
      onRetry: merged.onRetryCallback,
    };
    owner.addTask(this);
    group?.addTask(taskId);
  }

  abstract execute(context: TaskContext): R | Promise<R>;

  /**
   * A reference to this task's return value (Airflow's `.output`): pass it to a TaskFlow task to run
   * after this one and receive the value, as with a task function's result.
   */
  get output(): XComArg<Awaited<R>> {
    return new XComArg<Awaited<R>>(this);
  }

  /**
   * Resumes a deferred (or rescheduled) try: calls `method(context, event, kwargs)`, or raises the
   * trigger's failure. Sensors override it to turn a timeout into a sensor timeout or a skip.
   */
  resumeExecution(context: TaskContext, method: string, nextKwargs: JsonObject): unknown {
    const { [EVENT_KEY]: event, ...kwargs } = nextKwargs;
    if (method === FAIL_METHOD) {
      const message = typeof kwargs['error'] === 'string' ? kwargs['error'] : 'Trigger failure';
      const ErrorClass = kwargs['timeout'] === true ? TaskDeferralTimeout : TaskDeferralError;
      const error = new ErrorClass(message);
      if (typeof kwargs['traceback'] === 'string') error.stack = `${error.name}: ${message}\n[trigger] ${kwargs['traceback']}`;
      throw error;
    }
    const target = (this as unknown as Record<string, unknown>)[method];
    if (typeof target !== 'function') {
      throw new TypeError(`task '${this.taskId}' deferred to method '${method}', but the operator has no such method`);
    }
    return (target as (c: TaskContext, e: JsonValue | undefined, k: JsonObject) => unknown).call(this, context, event, kwargs);
  }

  /** Hands the wait to the triggerer and ends this run of the task. Never returns. */
  defer(options: DeferOptions): never {
    throw new TaskDeferred(options);
  }

  get upstreamTaskIds(): ReadonlySet<string> {
    return this.#upstream;
  }

  get downstreamTaskIds(): ReadonlySet<string> {
    return this.#downstream;
  }

  /** `a.setDownstream(b)`: b runs after a. Returns the argument, so calls can be chained. */
  setDownstream<T extends BaseOperator | readonly BaseOperator[]>(tasks: T): T {
    for (const task of toArray(tasks)) this.#link(task);
    return tasks;
  }

  setUpstream<T extends BaseOperator | readonly BaseOperator[]>(tasks: T): T {
    for (const task of toArray(tasks)) task.#link(this);
    return tasks;
  }

  #link(to: BaseOperator): void {
    if (this.dag !== to.dag) {
      throw new TypeError(`cannot link '${this.taskId}' (DAG '${this.dag.dagId}') to '${to.taskId}' (DAG '${to.dag.dagId}')`);
    }
    if (this === to) throw new TypeError(`task '${this.taskId}' cannot depend on itself`);
    this.#downstream.add(to.taskId);
    to.#upstream.add(this.taskId);
  }
}

function toArray(tasks: BaseOperator | readonly BaseOperator[]): readonly BaseOperator[] {
  return Array.isArray(tasks) ? tasks : [tasks as BaseOperator];
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function resolveSettings(taskId: string, options: TaskDefaults): TaskSettings {
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) {
    throw new RangeError(`task '${taskId}': retries must be a whole number ≥ 0, got ${retries}`);
  }
  const priorityWeight = options.priorityWeight ?? 1;
  if (!Number.isInteger(priorityWeight)) {
    throw new RangeError(`task '${taskId}': priorityWeight must be a whole number, got ${priorityWeight}`);
  }
  const pool = options.pool ?? DEFAULT_POOL;
  if (typeof pool !== 'string' || pool.length === 0) {
    throw new TypeError(`task '${taskId}': pool must be a non-empty pool name, got ${JSON.stringify(pool)}`);
  }
  const poolSlots = options.poolSlots ?? 1;
  if (!Number.isInteger(poolSlots) || poolSlots < 1) {
    throw new RangeError(`task '${taskId}': poolSlots must be a whole number ≥ 1, got ${poolSlots}`);
  }
  const maxActiveTisPerDag = options.maxActiveTisPerDag ?? null;
  if (maxActiveTisPerDag !== null && (!Number.isInteger(maxActiveTisPerDag) || maxActiveTisPerDag < 1)) {
    throw new RangeError(`task '${taskId}': maxActiveTisPerDag must be a whole number ≥ 1, got ${maxActiveTisPerDag}`);
  }
  return {
    maxActiveTisPerDag,
    retries,
    retryDelay: toDuration(options.retryDelay ?? 300, `task '${taskId}' retryDelay`),
    retryExponentialBackoff: options.retryExponentialBackoff ?? false,
    maxRetryDelay: toDuration(options.maxRetryDelay ?? { hours: 24 }, `task '${taskId}' maxRetryDelay`),
    executionTimeout:
      options.executionTimeout === undefined
        ? undefined
        : toDuration(options.executionTimeout, `task '${taskId}' executionTimeout`),
    priorityWeight,
    queue: options.queue ?? 'default',
    pool,
    poolSlots,
    triggerRule: toTriggerRule(taskId, options.triggerRule),
  };
}
