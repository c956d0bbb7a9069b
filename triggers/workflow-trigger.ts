import { DAG_RUN_STATES, judgeExternalStates, TASK_STATES, type ExternalStatus } from '../src/sdk/cross-dag.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { BaseTrigger, TriggerEvent, type TriggerRuntime } from '../src/sdk/trigger.ts';
import { refuseUnknownFields } from '../src/sdk/trigger-kwargs.ts';
import { stringList } from './string-list.ts';

export interface WorkflowTriggerKwargs {
  [key: string]: string | string[];
  externalDagId: string;
  /** The logical dates of the runs waited for, ISO 8601. */
  logicalDates: string[];
  /** The tasks waited for; empty: the runs themselves. */
  externalTaskIds: string[];
  allowedStates: string[];
  failedStates: string[];
  skippedStates: string[];
}

export interface WorkflowEventPayload {
  [key: string]: string;
  status: ExternalStatus;
}

const FIELDS = ['externalDagId', 'logicalDates', 'externalTaskIds', 'allowedStates', 'failedStates', 'skippedStates'];

/**
 * Fires when the runs of `externalDagId` at `logicalDates` (or the tasks `externalTaskIds` in them)
 * reach an allowed, failed or skipped state (Airflow's `WorkflowTrigger`, which ExternalTaskSensor
 * defers to); the event's `status` says which. It waits on the triggerer's run watcher, woken by
 * the NOTIFY a try's end sends, not on a poll.
 */
export class WorkflowTrigger extends BaseTrigger<WorkflowTriggerKwargs> {
  static override readonly classpath: string = 'tsflow.triggers.WorkflowTrigger';

  constructor(kwargs: WorkflowTriggerKwargs) {
    const label = new.target.name;
    if (typeof kwargs !== 'object' || kwargs === null) throw new InvalidTriggerKwargsError(`${label} needs kwargs { ${FIELDS.join(', ')} }`);
    refuseUnknownFields(kwargs, FIELDS, label);
    if (typeof kwargs.externalDagId !== 'string' || kwargs.externalDagId === '') {
      throw new InvalidTriggerKwargsError(`${label} externalDagId must be a DAG id, got ${JSON.stringify(kwargs.externalDagId)}`);
    }
    const logicalDates = stringList(kwargs.logicalDates, `${label} logicalDates`, true);
    const bad = logicalDates.find((d) => Number.isNaN(Date.parse(d)));
    if (bad !== undefined) throw new InvalidTriggerKwargsError(`${label} logicalDates has '${bad}', which is not an ISO 8601 date`);
    const externalTaskIds = stringList(kwargs.externalTaskIds ?? [], `${label} externalTaskIds`, false);
    const vocabulary = externalTaskIds.length > 0 ? TASK_STATES : DAG_RUN_STATES;
    super({
      externalDagId: kwargs.externalDagId,
      logicalDates,
      externalTaskIds,
      allowedStates: stringList(kwargs.allowedStates, `${label} allowedStates`, true, vocabulary),
      failedStates: stringList(kwargs.failedStates ?? [], `${label} failedStates`, false, vocabulary),
      skippedStates: stringList(kwargs.skippedStates ?? [], `${label} skippedStates`, false, vocabulary),
    });
  }

  override async run(signal: AbortSignal, runtime?: TriggerRuntime): Promise<TriggerEvent<WorkflowEventPayload> | undefined> {
    if (!runtime?.watchStates) throw new Error(`${this.constructor.name} waits on the triggerer's run watcher: run it in a triggerer (tsflow triggerer, scheduler or standalone)`);
    const k = this.kwargs;
    const taskIds = k.externalTaskIds.length > 0 ? k.externalTaskIds : undefined;
    const status = await runtime.watchStates(
      { dagId: k.externalDagId, logicalDates: k.logicalDates, ...(taskIds && { taskIds }) },
      (runs) =>
        judgeExternalStates(runs, {
          logicalDates: k.logicalDates,
          ...(taskIds && { taskIds }),
          allowedStates: k.allowedStates,
          failedStates: k.failedStates,
          skippedStates: k.skippedStates,
        }),
      signal,
    );
    return status && TriggerEvent.trusted({ status });
  }
}
