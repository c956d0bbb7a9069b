import type { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { JsonObject, JsonValue } from './json.ts';

/** What a task sees while it runs: Airflow's `context`, typed. */
export interface TaskContext {
  readonly dagId: string;
  readonly runId: string;
  readonly taskId: string;
  /** 1 for the first try; unchanged when a deferred task resumes. */
  readonly tryNumber: number;
  readonly maxTries: number;
  readonly logicalDate: DateTime;
  /** When this try first started; kept across deferrals and reschedules of the same try. */
  readonly startDate: DateTime;
  /** The JSON given with `tsflow dags trigger --conf`. */
  readonly conf: JsonObject;
  readonly log: Logger;
  /** Aborted when the task passes its `executionTimeout` or the worker is told to stop. */
  readonly signal: AbortSignal;
  /** The return value (or another key) of an upstream task in this run. */
  xcomPull<T extends JsonValue = JsonValue>(taskId: string, key?: string): Promise<T | undefined>;
  xcomPush(key: string, value: unknown): Promise<void>;
  /** Engine settings a task may consult, such as the default for sensors' `deferrable`. */
  readonly defaults: TaskRuntimeDefaults;
}

export interface TaskRuntimeDefaults {
  /** `TSFLOW_DEFAULT_DEFERRABLE`: what `deferrable` means when a sensor does not set it. @default false */
  readonly deferrable: boolean;
}
