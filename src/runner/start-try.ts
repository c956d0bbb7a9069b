import type { Logger } from 'pino';
import { withRetry } from '../db/retry.ts';
import { getRunInfo } from '../db/run-info.ts';
import type { TaskInstanceKey } from '../db/schema.ts';
import { getTaskInstance, startTry, TaskInstanceStateError, type StartedTry, type TryClaim } from '../db/task-instances.ts';
import { describeError } from './task-outcome.ts';
import type { TaskRunnerDeps } from './try-run.ts';

/**
 * `startTry`, retried with backoff across a dropped connection or a restarting server until it lands,
 * the task instance turns out not to be startable, or the worker is told to stop.
 *
 * The statement is fenced on the row being `queued` or `scheduled`, so a retry after a commit whose
 * reply was lost finds it `running` and refuses. That row is ours when it names this host and
 * process, and then the try is adopted as started. Another start could only have written the same
 * host and pid from this very process, for the same task instance, between two of our attempts:
 * executors never hold one task instance twice, so the two cannot be confused. A `claim` (a
 * `tsflow worker`'s job) is passed to startTry.
 */
export async function startTryRetrying(
  deps: TaskRunnerDeps,
  key: TaskInstanceKey,
  signal: AbortSignal | undefined,
  log: Logger,
  claim?: TryClaim,
): Promise<StartedTry> {
  const who = { hostname: deps.hostname, pid: deps.pid };
  let uncertain = false;
  return withRetry(
    async () => {
      try {
        return await startTry(deps.db, key, who, undefined, claim);
      } catch (error) {
        const adopted = uncertain && error instanceof TaskInstanceStateError ? await adoptStartedTry(deps, key) : undefined;
        if (adopted) {
          log.info({ tryNumber: adopted.row.try_number }, 'the try had started before the connection dropped');
          return adopted;
        }
        throw error;
      }
    },
    {
      baseMs: 100,
      capMs: 2000,
      signal,
      onRetry: (error, attempt, delayMs) => {
        uncertain = true;
        log.warn({ attempt: attempt + 1, retryInMs: Math.round(delayMs), error: describeError(error) }, 'could not start the try; retrying');
      },
    },
  );
}

/** The try `startTry` began for this host and process, if the row shows one. */
async function adoptStartedTry(deps: TaskRunnerDeps, key: TaskInstanceKey): Promise<StartedTry | undefined> {
  const row = await getTaskInstance(deps.db, key);
  if (!row || row.state !== 'running' || row.hostname !== deps.hostname || row.pid !== deps.pid) return undefined;
  const run = await getRunInfo(deps.db, key.dagId, key.runId);
  if (!run) return undefined;
  return { row, resuming: row.next_method !== null, run };
}
