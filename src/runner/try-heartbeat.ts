import { heartbeatTry } from '../db/task-instances.ts';
import { TaskInstanceChangedError } from './runner-errors.ts';
import type { TryRun } from './try-run.ts';

export interface TryHeartbeat {
  stop(): void;
}

/**
 * Writes `last_heartbeat_at` from the try's start until its outcome is recorded — through any retries
 * of that last write — so a scheduler tells a live try from one whose worker died (a zombie). A
 * failed beat (a dropped connection, a restarting server) is only logged: the next one may land, and
 * the try is not stopped for it. When the row is no longer `running` this try — cleared, or failed
 * elsewhere — `onLost` is told once and the beats stop, as Airflow's task runner does.
 */
export function startHeartbeat(t: TryRun, onLost: (reason: TaskInstanceChangedError) => void): TryHeartbeat {
  let beating = false;
  let stopped = false;
  const beat = (): void => {
    if (beating || stopped) return;
    beating = true;
    heartbeatTry(t.deps.db, t.key, t.tryNumber)
      .then((alive) => {
        if (alive || stopped) return;
        stop();
        onLost(new TaskInstanceChangedError('the task instance is no longer running this try (cleared, or failed elsewhere): stopping the task'));
      })
      .catch((error: unknown) => t.log.warn({ err: error }, 'task heartbeat failed; the next one may land'))
      .finally(() => (beating = false));
  };
  const timer = setInterval(beat, t.deps.heartbeatIntervalMs ?? 5000);
  timer.unref();
  const stop = (): void => {
    stopped = true;
    clearInterval(timer);
  };
  return { stop };
}
