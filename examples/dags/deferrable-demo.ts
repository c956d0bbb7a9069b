import { BaseOperator, chain, dag, param, TimeDeltaSensor, type JsonObject, type JsonValue, type TaskContext } from 'tsflow';
import { TimeDeltaTrigger, type DateTimeEventPayload } from 'tsflow/triggers';

/** A plain task: its return value becomes an XCom the next tasks can pull. */
class PlanBatch extends BaseOperator<JsonObject> {
  override execute(context: TaskContext): JsonObject {
    const batch = { id: `batch-${context.runId.slice(-6)}`, files: 3 };
    context.log.info(batch, 'planned a batch');
    return batch;
  }
}

/**
 * A custom deferrable operator: `execute` hands a wait of `waitSeconds` (the DAG's param, 2 seconds
 * by default) to the triggerer (no worker is held meanwhile) together with kwargs of its own; the
 * task resumes in `executeComplete` with the trigger's event and those kwargs, and returns something
 * computed from both.
 */
class WaitThenReport extends BaseOperator<JsonObject> {
  override async execute(context: TaskContext): Promise<never> {
    const batch = (await context.xcomPull<JsonObject>('plan_batch')) ?? {};
    const seconds = Number(context.params['waitSeconds'] ?? 2);
    this.defer({
      trigger: new TimeDeltaTrigger({ delta: { seconds } }),
      method: 'executeComplete',
      kwargs: { batchId: batch['id'] ?? 'unknown', deferredAt: new Date().toISOString() },
      timeout: { seconds: Math.max(300, seconds + 60) },
    });
  }

  executeComplete(_context: TaskContext, event: JsonValue | undefined, kwargs: JsonObject): JsonObject {
    const fired = event as DateTimeEventPayload;
    const waitedMs = Date.parse(fired.firedAt) - Date.parse(String(kwargs['deferredAt']));
    return { batchId: kwargs['batchId'] ?? null, firedAt: fired.firedAt, waitedMs };
  }
}

const params = { waitSeconds: param(2, { type: 'integer', minimum: 1 }, 'how long wait_then_report waits in the triggerer (the web UI can fire it early)') };

export default dag({ dagId: 'deferrable_demo', description: 'A deferrable sensor, then a custom operator that defers and resumes.', params }, () => {
  const plan = new PlanBatch({ taskId: 'plan_batch' });
  // Waits until 3 seconds after the run's logical date, in the triggerer, not on a worker.
  const window = new TimeDeltaSensor({ taskId: 'wait_for_window', delta: { seconds: 3 }, deferrable: true });
  const report = new WaitThenReport({ taskId: 'wait_then_report', retries: 1, retryDelay: 5 });
  chain(plan, window, report);
});
