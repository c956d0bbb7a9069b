import { DateTime } from 'luxon';
import { writeDeferral, type DeferralWrite, type WrittenDeferral } from '../db/deferral.ts';
import { finishTry, type TryOutcome } from '../db/task-instances.ts';
import type { TaskDeferred } from '../sdk/task-deferred.ts';
import { landFinalWrite } from './final-write.ts';
import { retryDelay } from './retry-delay.ts';
import { describeError, type TaskOutcome } from './task-outcome.ts';
import type { TaskRunResult, TryRun } from './try-run.ts';

/**
 * Writes what the task's code came to as the try's state — one fenced statement each, retried across
 * a dropped connection (`landFinalWrite`) — and says what was recorded: `discarded` when the task
 * instance had moved on without us (cleared, failed as a zombie).
 */
export async function recordOutcome(t: TryRun, outcome: TaskOutcome): Promise<TaskRunResult> {
  switch (outcome.kind) {
    case 'value':
      return finish(t, {
        state: 'success',
        returnValue: outcome.value === undefined ? undefined : JSON.stringify(outcome.value),
        ...(outcome.skipDownstream ? { skipTaskIds: outcome.skipDownstream } : {}),
      });
    case 'deferred':
      return defer(t, outcome.deferral);
    case 'rescheduled':
      return finish(t, { state: 'up_for_reschedule', readyAt: outcome.at.toJSDate(), nextMethod: 'execute' });
    case 'skipped':
      return finish(t, { state: 'skipped', error: outcome.message });
    case 'failed': {
      const error = describeError(outcome.error);
      t.log.error({ err: outcome.error }, 'task failed');
      if (outcome.retryable && t.tryNumber <= t.row.max_tries) {
        const readyAt = DateTime.utc().plus(retryDelay(t.task.settings, t.tryNumber)).toJSDate();
        return finish(t, { state: 'up_for_retry', error, readyAt });
      }
      return finish(t, { state: 'failed', error });
    }
  }
}

async function finish(t: TryRun, outcome: TryOutcome): Promise<TaskRunResult> {
  const { deps, key, tryNumber } = t;
  const error = outcome.error ?? null;
  const written = await landFinalWrite(t, {
    state: outcome.state,
    write: async () => ((await finishTry(deps.db, key, tryNumber, outcome)) ? true : undefined),
    // A zombie sweep writes up_for_retry or failed too, but with its own error: the error tells them apart.
    landedIn: (row) =>
      row.state === outcome.state && row.try_number === tryNumber && row.error === error && row.next_method === (outcome.nextMethod ?? null) ? true : undefined,
  });
  if (!written.landed) return discarded(t);
  return { state: outcome.state, tryNumber, ...(outcome.error ? { error: outcome.error } : {}) };
}

/**
 * The defer write: the trigger row and the `deferred` state together, or nothing. The trigger
 * timeout is computed by the database clock, capped by the executionTimeout from the try's start.
 */
async function defer(t: TryRun, deferred: TaskDeferred): Promise<TaskRunResult> {
  const { deps, key, tryNumber, log } = t;
  const [classpath, kwargs] = deferred.trigger.serialize();
  const deferral: DeferralWrite = {
    fence: { running: tryNumber },
    trigger: { classpath, kwargs, priorityWeight: t.task.settings.priorityWeight },
    nextMethod: deferred.method,
    nextKwargs: deferred.kwargs,
    timeoutSeconds: deferred.timeout ? deferred.timeout.as('seconds') : null,
    executionTimeoutSeconds: t.task.settings.executionTimeout ? t.task.settings.executionTimeout.as('seconds') : null,
  };
  const written = await landFinalWrite(t, {
    state: 'deferred',
    write: () => writeDeferral(deps.db, key, deferral),
    landedIn: (row): WrittenDeferral | undefined =>
      row.state === 'deferred' && row.try_number === tryNumber && row.next_method === deferral.nextMethod && row.trigger_id !== null
        ? { triggerId: row.trigger_id, tryNumber, triggerTimeout: row.trigger_timeout }
        : undefined,
  });
  if (!written.landed) return discarded(t);
  log.info({ triggerId: written.value.triggerId, classpath, method: deferred.method, timeout: written.value.triggerTimeout?.toISOString() }, 'task deferred');
  return { state: 'deferred', tryNumber };
}

function discarded(t: TryRun): TaskRunResult {
  t.log.warn('the task instance changed while it ran (cleared, timed out or failed elsewhere); its result is discarded');
  return { state: 'discarded', tryNumber: t.tryNumber };
}
