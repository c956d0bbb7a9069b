import { createHash } from 'node:crypto';
import { DateTime, Duration } from 'luxon';
import { deserializeTimetable } from '../scheduling/deserialize-timetable.ts';
import type { SerializedTimetable, Timetable } from '../scheduling/timetable.ts';
import { DEFAULT_POOL } from '../sdk/base-operator.ts';
import type { Dag } from '../sdk/dag.ts';
import { MappedOperator, type SerializedExpansion } from '../sdk/mapped-operator.ts';
import type { SerializedParams } from '../sdk/params.ts';
import { startsFromTrigger } from '../sdk/sensors/base-sensor.ts';
import { DEFAULT_TRIGGER_RULE, isTriggerRule, type TriggerRule } from '../sdk/trigger-rule.ts';

/** The format version of `serialized_dag.data`; a reader meeting a newer one says so. */
export const SERIALIZED_DAG_VERSION = 1;

/** One task as the scheduler needs it: no user code, only what decides when and where it runs. */
export interface SerializedTask {
  readonly taskId: string;
  /** The operator's class name, for display. */
  readonly operator: string;
  readonly upstream: readonly string[];
  readonly downstream: readonly string[];
  readonly retries: number;
  readonly retryDelaySeconds: number;
  readonly retryExponentialBackoff: boolean;
  readonly maxRetryDelaySeconds: number;
  readonly executionTimeoutSeconds: number | null;
  readonly priorityWeight: number;
  readonly queue: string;
  /** Absent in DAGs serialized before pools: read as 'default_pool' and 1 (`DagSpec`). */
  readonly pool: string;
  readonly poolSlots: number;
  /** Absent in DAGs serialized before trigger rules: read as 'all_success'. */
  readonly triggerRule: TriggerRule;
  /** A sensor whose new tries the scheduler defers itself (Airflow's `start_from_trigger`). */
  readonly startFromTrigger: boolean;
  /** A mapped task: where its map indexes' values come from. Absent: unmapped. */
  readonly mapped?: SerializedExpansion;
  /** Absent or null: no limit. */
  readonly maxActiveTisPerDag?: number | null;
}

/**
 * A DAG as the DAG processor stores it (Airflow's serialized DAG): JSON only, so a scheduler reads
 * it from the database without importing the DAG file. Dates are ISO strings in UTC.
 */
export interface SerializedDag {
  readonly version: number;
  readonly dagId: string;
  readonly fileloc: string;
  readonly description: string | null;
  readonly tags: readonly string[];
  readonly timetable: SerializedTimetable;
  /** As `dags list` shows it: `'0 0 * * *'`, `'@once'`, `'every 1h'`, `'None'`. */
  readonly timetableSummary: string;
  /** False for `schedule: null`: the scheduler never creates its runs. */
  readonly scheduled: boolean;
  readonly timezone: string;
  readonly startDate: string | null;
  readonly endDate: string | null;
  readonly catchup: boolean;
  readonly maxActiveRuns: number;
  readonly maxActiveTasks: number;
  readonly dagrunTimeoutSeconds: number | null;
  readonly isPausedUponCreation: boolean;
  readonly params: SerializedParams;
  readonly tasks: readonly SerializedTask[];
}

/** The JSON form of a DAG defined in `fileloc`. */
export function serializeDag(dag: Dag, fileloc: string): SerializedDag {
  const iso = (d: DateTime | undefined): string | null => (d ? (d.toUTC().toISO() as string) : null);
  return {
    version: SERIALIZED_DAG_VERSION,
    dagId: dag.dagId,
    fileloc,
    description: dag.description ?? null,
    tags: [...dag.tags],
    timetable: dag.timetable.serialize(),
    timetableSummary: dag.timetable.summary,
    scheduled: dag.timetable.canBeScheduled,
    timezone: dag.timezone,
    startDate: iso(dag.startDate),
    endDate: iso(dag.endDate),
    catchup: dag.catchup,
    maxActiveRuns: dag.maxActiveRuns,
    maxActiveTasks: dag.maxActiveTasks,
    dagrunTimeoutSeconds: dag.dagrunTimeout ? dag.dagrunTimeout.as('seconds') : null,
    isPausedUponCreation: dag.isPausedUponCreation,
    params: dag.params,
    tasks: [...dag.tasks.values()].map((task) => ({
      taskId: task.taskId,
      operator: task instanceof MappedOperator ? task.operatorName : task.constructor.name,
      upstream: [...task.upstreamTaskIds].sort(),
      downstream: [...task.downstreamTaskIds].sort(),
      retries: task.settings.retries,
      retryDelaySeconds: task.settings.retryDelay.as('seconds'),
      retryExponentialBackoff: task.settings.retryExponentialBackoff,
      maxRetryDelaySeconds: task.settings.maxRetryDelay.as('seconds'),
      executionTimeoutSeconds: task.settings.executionTimeout ? task.settings.executionTimeout.as('seconds') : null,
      priorityWeight: task.settings.priorityWeight,
      queue: task.settings.queue,
      pool: task.settings.pool,
      poolSlots: task.settings.poolSlots,
      triggerRule: task.settings.triggerRule,
      startFromTrigger: startsFromTrigger(task),
      ...(task instanceof MappedOperator && { mapped: task.expansion }),
      ...(task.settings.maxActiveTisPerDag !== null && { maxActiveTisPerDag: task.settings.maxActiveTisPerDag }),
    })),
  };
}

/**
 * A task serialized before pools or trigger rules existed lacks their fields: it takes the defaults.
 * A rule this version does not know (written by a newer tsflow) makes the DAG unusable here, rather
 * than a task that waits forever.
 */
function withDefaults(dagId: string, task: SerializedTask): SerializedTask {
  const { pool, poolSlots, triggerRule } = task as Partial<SerializedTask>;
  if (triggerRule !== undefined && !isTriggerRule(triggerRule)) {
    throw new Error(`serialized DAG '${dagId}': task '${task.taskId}' has trigger rule ${JSON.stringify(triggerRule)}, which this tsflow does not know: upgrade tsflow`);
  }
  if (pool !== undefined && poolSlots !== undefined && triggerRule !== undefined) return task;
  return { ...task, pool: pool ?? DEFAULT_POOL, poolSlots: poolSlots ?? 1, triggerRule: triggerRule ?? DEFAULT_TRIGGER_RULE };
}

/** A stable hash of a serialized DAG: the processor skips writing a DAG whose hash has not changed. */
export function serializedDagHash(dag: SerializedDag): string {
  return createHash('sha256').update(stableStringify(dag)).digest('hex').slice(0, 32);
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The settings `retryDelay` needs, from a live operator or a serialized task. */
export interface RetrySettings {
  readonly retryDelay: Duration;
  readonly retryExponentialBackoff: boolean;
  readonly maxRetryDelay: Duration;
}

/**
 * A serialized DAG made usable by the scheduler: its timetable rebuilt, its tasks by id. A custom
 * timetable cannot be rebuilt without the DAG's code: `timetable` is then undefined and the
 * scheduler asks the DAG code host for its next run.
 */
export class DagSpec {
  readonly data: SerializedDag;
  readonly timetable: Timetable | undefined;
  readonly tasks: ReadonlyMap<string, SerializedTask>;
  /** Tasks with no downstream: a run fails when one of them failed or is upstream_failed. */
  readonly leafTaskIds: readonly string[];
  readonly startDate: DateTime | undefined;
  readonly endDate: DateTime | undefined;

  /** `timetable`: the DAG's own timetable object, when its code is loaded here (CLI commands). */
  constructor(data: SerializedDag, timetable?: Timetable) {
    if (data.version > SERIALIZED_DAG_VERSION) {
      throw new Error(`serialized DAG '${data.dagId}' has format ${data.version}, newer than this tsflow reads (${SERIALIZED_DAG_VERSION}): upgrade tsflow`);
    }
    this.data = data;
    this.timetable = timetable ?? (data.timetable.kind === 'custom' ? undefined : deserializeTimetable(data.timetable));
    this.tasks = new Map(data.tasks.map((t) => [t.taskId, withDefaults(data.dagId, t)]));
    this.leafTaskIds = data.tasks.filter((t) => t.downstream.length === 0).map((t) => t.taskId);
    this.startDate = data.startDate ? DateTime.fromISO(data.startDate, { zone: 'utc' }) : undefined;
    this.endDate = data.endDate ? DateTime.fromISO(data.endDate, { zone: 'utc' }) : undefined;
  }

  get dagId(): string {
    return this.data.dagId;
  }

  /** False for `schedule: null`. (Older serialized forms lack the flag: judged by the timetable kind.) */
  get scheduled(): boolean {
    return (this.data.scheduled as boolean | undefined) ?? this.data.timetable.kind !== 'null';
  }

  /** The timetable, or an error saying a custom one needs the DAG's code. */
  requireTimetable(): Timetable {
    if (this.timetable) return this.timetable;
    throw new Error(`DAG '${this.dagId}' has a custom timetable (${this.data.timetableSummary}); its code must be loaded to evaluate it`);
  }

  static retrySettings(task: SerializedTask): RetrySettings {
    return {
      retryDelay: Duration.fromMillis(task.retryDelaySeconds * 1000),
      retryExponentialBackoff: task.retryExponentialBackoff,
      maxRetryDelay: Duration.fromMillis(task.maxRetryDelaySeconds * 1000),
    };
  }
}
