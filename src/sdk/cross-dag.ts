import type { DateTime } from 'luxon';
import type { JsonObject } from './json.ts';

/*
 * What cross-DAG operators (TriggerDagRunOperator, ExternalTaskSensor) and their triggers share:
 * the question they ask the database about another DAG's runs, the answer, and how an answer is
 * judged. Pure: the engine answers the question (`context.dagRuns` on a worker, the triggerer's
 * shared watcher in a trigger).
 */

export const DAG_RUN_STATES = ['queued', 'running', 'success', 'failed'] as const;
export type DagRunStateName = (typeof DAG_RUN_STATES)[number];

export const TASK_STATES = [
  'scheduled',
  'queued',
  'running',
  'success',
  'failed',
  'skipped',
  'upstream_failed',
  'up_for_retry',
  'up_for_reschedule',
  'deferred',
  'removed',
] as const;
export type TaskStateName = (typeof TASK_STATES)[number];

/** Which runs of `dagId` to read: by run id, by logical date (ISO 8601), or both; with `taskIds`, their task instances too. */
export interface ExternalStateQuery {
  dagId: string;
  runIds?: readonly string[];
  logicalDates?: readonly string[];
  taskIds?: readonly string[];
}

/** One run that matched a query: its state and those of the asked task ids (null: not scheduled yet; absent: no such task instance). */
export interface ExternalRunState {
  dagId: string;
  runId: string;
  /** ISO 8601, UTC. */
  logicalDate: string;
  state: DagRunStateName;
  tasks: Record<string, TaskStateName | null>;
}

/** What `context.dagRuns.trigger` creates (Airflow's `trigger_dag`). */
export interface TriggerDagRunRequest {
  dagId: string;
  /** @default `manual__<logical date>` */
  runId?: string;
  conf?: JsonObject;
  /** @default now */
  logicalDate?: DateTime;
  /** An existing run with this id is cleared and run again instead of being an error. @default false */
  reset?: boolean;
}

export interface TriggeredDagRun {
  dagId: string;
  runId: string;
  logicalDate: DateTime;
  /** False when an existing run was cleared (`reset`). */
  created: boolean;
}

/** Another DAG's runs, as a task reaches them (`context.dagRuns`). */
export interface DagRunAccess {
  /**
   * Queues a run of `dagId` as `tsflow dags trigger` does: conf checked against the DAG's params,
   * the data interval its schedule infers. A run id already taken throws `DagRunExistsError`
   * (its `name`) unless `reset`.
   */
  trigger(request: TriggerDagRunRequest): Promise<TriggeredDagRun>;
  /** The runs (and task instances) a query names; one statement. */
  states(query: ExternalStateQuery): Promise<ExternalRunState[]>;
  /** Whether `dagId` is known (an active DAG), and its task ids as last parsed (undefined until a DAG processor parsed it). */
  describeDag(dagId: string): Promise<{ taskIds: string[] | undefined } | undefined>;
}

/** How a cross-DAG wait ended. */
export type ExternalStatus = 'success' | 'failed' | 'skipped';

export interface ExternalCriteria {
  /** The logical dates waited for (ISO 8601); with none, every run in the answer counts. */
  logicalDates?: readonly string[];
  /** Task ids waited for; none: the runs' own states are judged. */
  taskIds?: readonly string[];
  allowedStates: readonly string[];
  failedStates: readonly string[];
  skippedStates?: readonly string[];
}

/**
 * Airflow's ExternalTaskSensor rule: failed as soon as any watched run (or task instance) is in a
 * failed state, then skipped as soon as any is in a skipped state, success once every logical date
 * (and every task at it) has a state in `allowedStates`; undefined while still waiting. When several
 * runs share a logical date, one of them in an allowed state is enough.
 */
export function judgeExternalStates(runs: readonly ExternalRunState[], criteria: ExternalCriteria): ExternalStatus | undefined {
  const dates = criteria.logicalDates?.map((d) => Date.parse(d)) ?? [...new Set(runs.map((r) => Date.parse(r.logicalDate)))];
  const wanted = new Set(dates);
  const relevant = runs.filter((r) => wanted.has(Date.parse(r.logicalDate)));
  const taskIds = criteria.taskIds ?? [];
  // Task instances not created or not scheduled yet have no state: they only ever mean "still waiting".
  const statesOf = (run: ExternalRunState): string[] => (taskIds.length === 0 ? [run.state] : taskIds.flatMap((t) => run.tasks[t] ?? []));
  const all = relevant.flatMap(statesOf);
  if (all.some((s) => criteria.failedStates.includes(s))) return 'failed';
  if (all.some((s) => (criteria.skippedStates ?? []).includes(s))) return 'skipped';
  if (dates.length === 0) return undefined;
  const done = dates.every((date) => {
    const atDate = relevant.filter((r) => Date.parse(r.logicalDate) === date);
    if (taskIds.length === 0) return atDate.some((r) => criteria.allowedStates.includes(r.state));
    return taskIds.every((t) => atDate.some((r) => criteria.allowedStates.includes(r.tasks[t] ?? '')));
  });
  return done ? 'success' : undefined;
}

/** Checks a list of state names against the allowed vocabulary, naming the option and the bad value. */
export function checkStates(owner: string, option: string, states: readonly string[], vocabulary: readonly string[]): string[] {
  if (!Array.isArray(states)) throw new TypeError(`${owner}: ${option} must be an array of states, got ${JSON.stringify(states)}`);
  for (const s of states) {
    if (!vocabulary.includes(s)) throw new TypeError(`${owner}: ${option} has '${String(s)}', which is not one of ${vocabulary.join(', ')}`);
  }
  return [...states];
}

/** Refuses a state named in two of the lists (Airflow: "Duplicate values provided across allowed_states, skipped_states and failed_states"). */
export function checkDisjoint(owner: string, lists: Record<string, readonly string[]>): void {
  const seen = new Map<string, string>();
  for (const [option, states] of Object.entries(lists)) {
    for (const s of states) {
      const other = seen.get(s);
      if (other !== undefined && other !== option) throw new TypeError(`${owner}: state '${s}' is in both ${other} and ${option}: a state can only mean one outcome`);
      seen.set(s, option);
    }
  }
}
