import type { ColumnType, Generated, Selectable } from 'kysely';
import type { SerializedDag } from '../dag-bag/serialized-dag.ts';
import type { JsonObject, JsonValue } from '../sdk/json.ts';

/** jsonb: read as parsed JSON, written as a JSON string (node-pg would turn JS arrays into PG arrays). */
type Json<T> = ColumnType<T, string, string>;
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export type DagRunState = 'queued' | 'running' | 'success' | 'failed';
export type TaskInstanceState =
  | 'scheduled'
  | 'queued'
  | 'running'
  | 'success'
  | 'failed'
  | 'skipped'
  | 'upstream_failed'
  | 'up_for_retry'
  | 'up_for_reschedule'
  | 'deferred'
  | 'removed';
export type JobType = 'scheduler' | 'triggerer' | 'dag_processor' | 'worker';
export type DagRunType = 'manual' | 'scheduled' | 'backfill' | 'asset_triggered';
export type JobState = 'running' | 'success' | 'failed';

export interface DagTable {
  dag_id: string;
  fileloc: string;
  description: string | null;
  is_paused: Generated<boolean>;
  last_parsed_at: DefaultedTimestamp;
  /** False once the DAG's file is gone or no longer defines it. */
  is_active: Generated<boolean>;
  /** The schedule as `dags list` shows it; null until a DAG processor parsed the DAG. */
  timetable_summary: string | null;
  max_active_runs: Generated<number>;
  max_active_tasks: Generated<number>;
  /** The next scheduled run to create (Airflow's `next_dagrun*`); `next_dagrun_create_after` null: none due. */
  next_dagrun: Timestamp | null;
  next_dagrun_data_interval_start: Timestamp | null;
  next_dagrun_data_interval_end: Timestamp | null;
  next_dagrun_create_after: Timestamp | null;
}

export interface SerializedDagTable {
  dag_id: string;
  fileloc: string;
  dag_hash: string;
  data: Json<SerializedDag>;
  last_updated: DefaultedTimestamp;
}

export interface ImportErrorTable {
  filename: string;
  file_hash: string | null;
  stacktrace: string;
  timestamp: DefaultedTimestamp;
}

export interface DagRunTable {
  dag_id: string;
  run_id: string;
  state: DagRunState;
  run_type: ColumnType<DagRunType, DagRunType | undefined, DagRunType>;
  conf: ColumnType<JsonObject, string | undefined, string>;
  logical_date: DefaultedTimestamp;
  data_interval_start: Timestamp | null;
  data_interval_end: Timestamp | null;
  created_at: DefaultedTimestamp;
  start_date: Timestamp | null;
  end_date: Timestamp | null;
}

export interface JobTable {
  id: Generated<number>;
  job_type: JobType;
  hostname: string;
  pid: number;
  state: JobState;
  capacity: number | null;
  start_date: DefaultedTimestamp;
  end_date: Timestamp | null;
  latest_heartbeat: DefaultedTimestamp;
  /** A `tsflow worker`'s queues. */
  queues: string[] | null;
  /** A `tsflow worker`'s graphile-worker worker ids (what its locked jobs' `locked_by` says). */
  graphile_worker_ids: string[] | null;
}

export interface TriggerTable {
  id: Generated<number>;
  classpath: string;
  /** An encrypted envelope of the kwargs' JSON, or (rows from before migration 0009, or no key) the JSON text: read with decodeTriggerKwargs. */
  kwargs: string;
  created_at: DefaultedTimestamp;
  triggerer_id: number | null;
  priority_weight: Generated<number>;
}

export interface TaskInstanceTable {
  dag_id: string;
  run_id: string;
  task_id: string;
  /** -1: an unmapped task; 0…n-1: one map index of a mapped task (migration 0011). */
  map_index: Generated<number>;
  /** The task's `maxActiveTisPerDag`, copied when the row is created; null: no limit. */
  max_active_tis_per_dag: number | null;
  state: TaskInstanceState | null;
  try_number: Generated<number>;
  max_tries: Generated<number>;
  priority_weight: Generated<number>;
  queue: Generated<string>;
  /** The pool whose slots it occupies while queued, running (or deferred, if the pool counts those). */
  pool: Generated<string>;
  pool_slots: Generated<number>;
  hostname: string | null;
  pid: number | null;
  start_date: Timestamp | null;
  end_date: Timestamp | null;
  scheduled_at: Timestamp | null;
  queued_at: Timestamp | null;
  /** The scheduler job that moved it to `queued` (its executor holds it). */
  queued_by_job_id: number | null;
  updated_at: DefaultedTimestamp;
  ready_at: Timestamp | null;
  last_heartbeat_at: Timestamp | null;
  error: string | null;
  next_method: string | null;
  next_kwargs: Json<JsonObject> | null;
  trigger_id: number | null;
  trigger_timeout: Timestamp | null;
  /** The `tsflow worker` job that claimed its current graphile-worker job (graphile executor only). */
  worker_job_id: number | null;
  /** When the last time-trigger event it resumed from was written (database clock); see migration 0010. */
  trigger_fired_at: Timestamp | null;
  /** How late that trigger fired against its due moment, in ms, as its triggerer measured. */
  trigger_lateness_ms: number | null;
}

/** Airflow's `slot_pool`. */
export interface PoolTable {
  pool: string;
  /** -1: unlimited. */
  slots: number;
  description: string | null;
  /** Deferred task instances occupy slots too (Airflow's `include_deferred`). */
  include_deferred: Generated<boolean>;
}

export interface XcomTable {
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: Generated<number>;
  key: string;
  value: Json<JsonValue>;
  created_at: DefaultedTimestamp;
}

/** Airflow's `connection`; password and extra are encrypted envelopes. */
export interface ConnectionTable {
  conn_id: string;
  conn_type: string;
  description: string | null;
  host: string | null;
  schema: string | null;
  login: string | null;
  password: string | null;
  port: number | null;
  extra: string | null;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
}

/** Airflow's `variable`; `val` is an encrypted envelope. */
export interface VariableTable {
  key: string;
  val: string;
  description: string | null;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
}

export type ApiRole = 'viewer' | 'operator' | 'admin';

export interface ApiUserTable {
  id: Generated<number>;
  username: string;
  role: ApiRole;
  /** `scrypt$N$r$p$salt$hash` (base64url). */
  password_hash: string;
  created_at: DefaultedTimestamp;
}

export interface ApiSessionTable {
  /** SHA-256 of the cookie's session id. */
  id_hash: string;
  user_id: number;
  csrf_token: string;
  created_at: DefaultedTimestamp;
  expires_at: Timestamp;
}

export interface ApiTokenTable {
  id: Generated<number>;
  /** SHA-256 of the token. */
  token_hash: string;
  user_id: number;
  created_at: DefaultedTimestamp;
  last_used_at: Timestamp | null;
}

export interface LoginFailureTable {
  id: Generated<number>;
  username: string;
  client_ip: string;
  at: DefaultedTimestamp;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: DefaultedTimestamp;
  username: string | null;
  action: string;
  target: string | null;
  details: ColumnType<JsonObject, string | undefined, string>;
}

export interface Schema {
  dag: DagTable;
  dag_run: DagRunTable;
  serialized_dag: SerializedDagTable;
  import_error: ImportErrorTable;
  job: JobTable;
  trigger: TriggerTable;
  task_instance: TaskInstanceTable;
  pool: PoolTable;
  xcom: XcomTable;
  connection: ConnectionTable;
  variable: VariableTable;
  api_user: ApiUserTable;
  api_session: ApiSessionTable;
  api_token: ApiTokenTable;
  login_failure: LoginFailureTable;
  audit_log: AuditLogTable;
}

export type TaskInstanceRow = Selectable<TaskInstanceTable>;
export type DagRunRow = Selectable<DagRunTable>;
export type JobRow = Selectable<JobTable>;
export type PoolRow = Selectable<PoolTable>;

/** Identifies one task instance. */
export interface TaskInstanceKey {
  readonly dagId: string;
  readonly runId: string;
  readonly taskId: string;
  /** -1 (or omitted): an unmapped task; 0…n-1: one map index of a mapped task. */
  readonly mapIndex?: number | undefined;
}

/** Airflow's map index of an unmapped task instance. */
export const UNMAPPED = -1;

/** The key's map index, -1 when omitted. */
export function mapIndexOf(key: TaskInstanceKey): number {
  return key.mapIndex ?? UNMAPPED;
}

/** `dag/run/task`, with `[i]` for map index i of a mapped task. */
export function tiKeyString(key: TaskInstanceKey): string {
  const mapIndex = mapIndexOf(key);
  return `${key.dagId}/${key.runId}/${key.taskId}${mapIndex === UNMAPPED ? '' : `[${mapIndex}]`}`;
}

/** The key of a row that has the key columns; `mapIndex` only for a mapped task instance (unmapped keys stay as they were). */
export function rowKey(row: { dag_id: string; run_id: string; task_id: string; map_index: number }): TaskInstanceKey {
  const key = { dagId: row.dag_id, runId: row.run_id, taskId: row.task_id };
  return row.map_index === UNMAPPED ? key : { ...key, mapIndex: row.map_index };
}
