import { TaskExecutionTimeout } from './runner-errors.ts';
import type { TryRun } from './try-run.ts';

/** The signal a running task is given, and what may abort it. */
export interface TaskStop {
  readonly signal: AbortSignal;
  abort(reason: Error): void;
  /** Clears the timeout timer and stops listening to the worker's signal. */
  dispose(): void;
}

/**
 * Aborts when the worker is told to stop, when the task's executionTimeout passes, or when `abort` is
 * called (the heartbeat found the try no longer running). The first reason wins.
 */
export function taskStop(t: TryRun): TaskStop {
  const controller = new AbortController();
  const { signal: worker, deadline } = t;
  const forward = (): void => controller.abort(worker?.reason);
  if (worker?.aborted) forward();
  else worker?.addEventListener('abort', forward, { once: true });
  const timer = deadline
    ? setTimeout(
        () => controller.abort(new TaskExecutionTimeout(`task exceeded its executionTimeout of ${t.task.settings.executionTimeout?.toHuman()}`)),
        Math.max(0, deadline.diffNow().toMillis()),
      )
    : undefined;
  return {
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    dispose: () => {
      clearTimeout(timer);
      worker?.removeEventListener('abort', forward);
    },
  };
}
