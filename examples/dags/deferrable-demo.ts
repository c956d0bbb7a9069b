import { BaseOperator, chain, dag, param, task, TimeDeltaSensor, type JsonObject, type JsonValue, type TaskContext } from 'tsflow';
import { TimeDeltaTrigger, type DateTimeEventPayload } from 'tsflow/triggers';

interface Batch extends JsonObject {
  id: string;
  files: number;
}

interface Report extends JsonObject {
  batchId: string;
  firedAt: string;
  waitedMs: number;
}

/** A task function (TaskFlow, Airflow's `@task`): its return value is an XCom other tasks receive. */
const planBatch = task({ taskId: 'plan_batch' }, (context): Batch => {
  const batch = { id: `batch-${context.runId.slice(-6)}`, files: 3 };
  context.log.info(batch, 'planned a batch');
  return batch;
});

/**
 * A custom deferrable operator: `execute` hands a wait of `waitSeconds` (the DAG's param, 2 seconds
 * by default) to the triggerer (no worker is held meanwhile) together with kwargs of its own; the
 * task resumes in `executeComplete` with the trigger's event and those kwargs, and returns something
 * computed from both.
 */
class WaitThenReport extends BaseOperator<Report> {
  override async execute(context: TaskContext): Promise<never> {
    const batch = await context.xcomPull<Batch>('plan_batch');
    const seconds = Number(context.params['waitSeconds'] ?? 2);
    this.defer({
      trigger: new TimeDeltaTrigger({ delta: { seconds } }),
      method: 'executeComplete',
      kwargs: { batchId: batch?.id ?? 'unknown', deferredAt: new Date().toISOString() },
      timeout: { seconds: Math.max(300, seconds + 60) },
    });
  }

  executeComplete(_context: TaskContext, event: JsonValue | undefined, kwargs: JsonObject): Report {
    const fired = event as DateTimeEventPayload;
    const waitedMs = Date.parse(fired.firedAt) - Date.parse(String(kwargs['deferredAt']));
    return { batchId: String(kwargs['batchId']), firedAt: fired.firedAt, waitedMs };
  }
}

/** Takes both results, typed: passing `planBatch()`'s XCom where a `Report` is expected does not compile. */
const summarise = task({ taskId: 'summarise' }, (context, batch: Batch, report: Report): string => {
  const line = `${batch.files} files of ${batch.id}: the wait fired after ${report.waitedMs} ms`;
  context.log.info({ batchId: batch.id }, line);
  return line;
});

const params = { waitSeconds: param(2, { type: 'integer', minimum: 1 }, 'how long wait_then_report waits in the triggerer (the web UI can fire it early)') };

export default dag({ dagId: 'deferrable_demo', description: 'TaskFlow tasks around a deferrable sensor and a custom operator that defers and resumes.', params }, () => {
  const batch = planBatch();
  // Waits until 3 seconds after the run's logical date, in the triggerer, not on a worker.
  const window = new TimeDeltaSensor({ taskId: 'wait_for_window', delta: { seconds: 3 }, deferrable: true });
  const report = new WaitThenReport({ taskId: 'wait_then_report', retries: 1, retryDelay: 5 });
  chain(batch, window, report);
  summarise(batch, report.output);
});
