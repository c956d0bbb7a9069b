import type { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { Connection } from '../secrets/connection.ts';
import type { JsonFieldCondition } from './http-expectation.ts';
import type { DagRunAccess } from './cross-dag.ts';
import type { JsonObject, JsonValue } from './json.ts';
import type { HitlAccess } from './hitl.ts';
import type { ExternalEvent } from './trigger.ts';

export type { Connection };

/** Options of `context.getVariable`. */
export interface VariableOptions<T> {
  /** Returned when the variable is not defined (otherwise that is an error naming the key). */
  default?: T;
  /** Parse the value as JSON. @default false */
  json?: boolean;
}

/** What a task sees while it runs: Airflow's `context`, typed. */
export interface TaskContext {
  readonly dagId: string;
  readonly runId: string;
  readonly taskId: string;
  /** Which map index of a mapped task this is (0…n-1); -1 for an unmapped task (Airflow's `map_index`). */
  readonly mapIndex: number;
  /** 1 for the first try; unchanged when a deferred task resumes. */
  readonly tryNumber: number;
  readonly maxTries: number;
  /** The run's logical date (Airflow's `logical_date`), UTC: the start of its data interval. */
  readonly logicalDate: DateTime;
  /** How the run was created: `'manual'` (`dags trigger`, `dags test`), `'scheduled'`, `'backfill'`. */
  readonly runType: string;
  /** The run's data interval, UTC; a run stored without one has a zero-length interval at its logical date. */
  readonly dataIntervalStart: DateTime;
  readonly dataIntervalEnd: DateTime;
  /** The logical date as `YYYY-MM-DD` (Airflow's `ds`). */
  readonly ds: string;
  /** The logical date as `YYYYMMDD` (`ds_nodash`). */
  readonly dsNodash: string;
  /** The logical date as Python's isoformat, `2026-01-01T00:00:00+00:00` (`ts`). */
  readonly ts: string;
  /** The logical date as `20260101T000000` (`ts_nodash`). */
  readonly tsNodash: string;
  /**
   * From the latest successful run of this DAG whose logical date is before this run's (Airflow's
   * `prev_*_success`); undefined when there is none.
   */
  readonly prevDataIntervalStartSuccess: DateTime | undefined;
  readonly prevDataIntervalEndSuccess: DateTime | undefined;
  readonly prevStartDateSuccess: DateTime | undefined;
  readonly prevEndDateSuccess: DateTime | undefined;
  /** When this try first started; kept across deferrals and reschedules of the same try. */
  readonly startDate: DateTime;
  /** The JSON given with `tsflow dags trigger --conf`. */
  readonly conf: JsonObject;
  /** The DAG's params, overridden by the run's `conf` and checked against their schemas. */
  readonly params: JsonObject;
  readonly log: Logger;
  /** Aborted when the task passes its `executionTimeout` or the worker is told to stop. */
  readonly signal: AbortSignal;
  /** The return value (or another key) of an upstream task in this run. */
  xcomPull<T extends JsonValue = JsonValue>(taskId: string, key?: string): Promise<T | undefined>;
  xcomPush(key: string, value: unknown): Promise<void>;
  /**
   * The connection `connId`: `TSFLOW_CONN_<ID>` if set, else the database. Its password (and the
   * secret-looking values of its extra) are masked in logs from then on. An unknown id is an error
   * naming it.
   */
  getConnection(connId: string): Promise<Connection>;
  /**
   * The variable `key`: `TSFLOW_VAR_<KEY>` if set, else the database; `options.default` when neither
   * has it (without a default that is an error). A key that looks secret (`*password*`, `*token*`, …)
   * has its value masked in logs from then on.
   */
  getVariable<T = string>(key: string, options?: VariableOptions<T>): Promise<string | T>;
  /**
   * The oldest stored external event of `key` created at or after `sinceEpochMs` whose payload meets
   * every `match` condition, or undefined (what `EventSensor` pokes with). Absent where the task has
   * no database (`tsflow tasks test` without one).
   */
  findEvent?(key: string, sinceEpochMs: number, match: readonly JsonFieldCondition[]): Promise<ExternalEvent | undefined>;
  /** This task instance's human-in-the-loop request (what `HITLOperator` uses); absent where the task has no database. */
  readonly hitl?: HitlAccess;
  /** Engine settings a task may consult, such as the default for sensors' `deferrable`. */
  readonly defaults: TaskRuntimeDefaults;
  /** Other DAGs' runs: trigger one, read their states (TriggerDagRunOperator, ExternalTaskSensor). */
  readonly dagRuns: DagRunAccess;
}

export interface TaskRuntimeDefaults {
  /** `TSFLOW_DEFAULT_DEFERRABLE`: what `deferrable` means when a sensor does not set it. @default false */
  readonly deferrable: boolean;
}
