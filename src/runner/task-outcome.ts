import type { DateTime } from 'luxon';
import type { TaskInstanceRow } from '../db/schema.ts';
import type { BaseOperator } from '../sdk/base-operator.ts';
import type { TaskContext } from '../sdk/context.ts';
import { controlKind, type RescheduleTask, type SkipDownstreamTasks } from '../sdk/errors.ts';
import { maskText } from '../secrets/masker.ts';
import { applyRenderedFields, renderTemplateFields } from './render-templates.ts';
import { toJsonValue, type JsonObject, type JsonValue } from '../sdk/json.ts';
import type { TaskDeferred } from '../sdk/task-deferred.ts';

/*
 * What one run of a task's code came to. The SDK keeps Airflow's authoring model — `this.defer()`,
 * `SkipTask`, `RescheduleTask` and `FailTask` are thrown — and the runner turns them into values right
 * here, at the call boundary, so that after `invoke` only a genuine error is an error.
 */

export type TaskOutcome =
  /**
   * `execute` (or the resume method) returned; the value is stored as the `return_value` XCom.
   * `skipDownstream`: a branching operator's not-followed tasks, skipped with this success.
   */
  | { kind: 'value'; value: JsonValue | undefined; skipDownstream?: readonly string[] }
  /** It handed a trigger over (`this.defer()`): the try continues in the triggerer. */
  | { kind: 'deferred'; deferral: TaskDeferred }
  /** A sensor in reschedule mode: run the try again at `at`, without holding a worker meanwhile. */
  | { kind: 'rescheduled'; at: DateTime }
  | { kind: 'skipped'; message: string }
  /** It threw, or was stopped; `retryable` is false for `FailTask` (fail now, whatever retries remain). */
  | { kind: 'failed'; error: unknown; retryable: boolean };

export interface Invocation {
  /** Settles when the task's code returns or throws — or at once when `signal` aborts first. Never rejects. */
  readonly outcome: Promise<TaskOutcome>;
  /** Whether the task's code has returned or thrown; still false after an abort it ignored. */
  readonly settled: boolean;
}

/**
 * Renders the task's templated fields, then runs `execute` (or on resume the method the task
 * deferred to), and reports what happened. A task told to stop before it began is not started at all.
 */
export function invoke(task: BaseOperator, context: TaskContext, row: Pick<TaskInstanceRow, 'next_method' | 'next_kwargs'>, signal: AbortSignal): Invocation {
  let settled = false;
  const work = signal.aborted
    ? Promise.reject(signal.reason as Error)
    : Promise.resolve().then(async () => {
        // Templated fields are rendered on every run of the code, a resume after a deferral included (as Airflow does).
        const restore = applyRenderedFields(task, await renderTemplateFields(task, context));
        try {
          return await (row.next_method === null ? task.execute(context) : task.resumeExecution(context, row.next_method, (row.next_kwargs ?? {}) as JsonObject));
        } finally {
          restore();
        }
      });
  work.then(
    () => (settled = true),
    () => (settled = true),
  );
  const outcome = raceAbort(work, signal).then(
    (value) => returned(value, task.taskId),
    (error: unknown) => thrown(error, task.taskId),
  );
  return {
    outcome,
    get settled() {
      return settled;
    },
  };
}

/** What a thrown value means: one of the SDK's control-flow signals, or a failure. */
export function thrown(error: unknown, taskId = 'unknown'): TaskOutcome {
  switch (controlKind(error)) {
    case 'defer':
      return { kind: 'deferred', deferral: error as TaskDeferred };
    case 'reschedule':
      return { kind: 'rescheduled', at: (error as RescheduleTask).rescheduleAt };
    case 'skip':
      return { kind: 'skipped', message: describeError(error) };
    case 'fail':
      return { kind: 'failed', error, retryable: false };
    case 'skip-downstream': {
      const signal = error as SkipDownstreamTasks;
      const outcome = returned(signal.value, taskId);
      return outcome.kind === 'value' ? { ...outcome, skipDownstream: [...signal.taskIds] } : outcome;
    }
    case undefined:
      return { kind: 'failed', error, retryable: true };
  }
}

/** A returned value, as the JSON it will be stored as; a value that cannot be stored fails the try, saying why. */
export function returned(value: unknown, taskId: string): TaskOutcome {
  if (value === undefined) return { kind: 'value', value: undefined };
  const label = `the return value of task '${taskId}'`;
  try {
    const json = toJsonValue(value, label);
    // jsonb refuses the \u0000 escape: caught here it is a clear task failure, not a write the database rejects.
    if (ESCAPED_NUL.test(JSON.stringify(json))) {
      return { kind: 'failed', error: new TypeError(`${label} contains a NUL character (\\u0000), which PostgreSQL cannot store`), retryable: true };
    }
    return { kind: 'value', value: json };
  } catch (error) {
    return { kind: 'failed', error, retryable: true };
  }
}

/** A `\u0000` escape in JSON text, not preceded by an escaped backslash (`\\u0000` is the text "\u0000"). */
const ESCAPED_NUL = /(?<!\\)(?:\\\\)*\\u0000/;

/**
 * `Name: message`, for the task instance's `error` column and the log. A NUL character becomes `\0`:
 * PostgreSQL text cannot hold one, and a write it refuses would leave the try unrecorded.
 */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return maskText(text).replaceAll('\u0000', '\\0');
}

/** Resolves with the task's result, or rejects with the abort reason as soon as the signal fires. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
