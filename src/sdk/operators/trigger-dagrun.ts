import { DateTime, type Duration } from 'luxon';
import { sleep } from '../../common/sleep.ts';
import { DagStateTrigger } from '../../../triggers/dag-state-trigger.ts';
import { BaseOperator, type BaseOperatorOptions } from '../base-operator.ts';
import type { TaskContext } from '../context.ts';
import { checkDisjoint, checkStates, DAG_RUN_STATES, type DagRunStateName } from '../cross-dag.ts';
import { toDuration, type DurationInput } from '../duration.ts';
import { SkipTask } from '../errors.ts';
import { toJsonObject, type JsonObject, type JsonValue } from '../json.ts';

/** The XCom keys the operator pushes (Airflow's `XCOM_RUN_ID`, `XCOM_LOGICAL_DATE_ISO`). */
export const TRIGGER_RUN_ID_KEY = 'trigger_run_id';
export const TRIGGER_LOGICAL_DATE_KEY = 'trigger_logical_date_iso';

export interface TriggerDagRunOperatorOptions extends BaseOperatorOptions {
  /** The DAG to run. */
  triggerDagId: string;
  /** The new run's id. @default `manual__<logical date>` */
  triggerRunId?: string;
  /** The run's conf, checked against that DAG's params. @default {} */
  conf?: JsonObject;
  /** The run's logical date. @default the moment the task runs */
  logicalDate?: DateTime | Date | string;
  /** A run with this id already there is cleared and run again, instead of failing the task. @default false */
  resetDagRun?: boolean;
  /** A run with this id already there skips the task (unless `resetDagRun`). @default false */
  skipWhenAlreadyExists?: boolean;
  /** Wait for the run to end in `allowedStates` (success of the task) or `failedStates` (its failure). @default false */
  waitForCompletion?: boolean;
  /** Without `deferrable`: how often the waiting task looks at the run. @default 60 seconds */
  pokeInterval?: DurationInput;
  /** @default ['success'] */
  allowedStates?: DagRunStateName[];
  /** @default ['failed'] */
  failedStates?: DagRunStateName[];
  /**
   * Wait in the triggerer instead of on a worker; it wakes on the NOTIFY sent when the run ends.
   * @default the engine's `TSFLOW_DEFAULT_DEFERRABLE` (false)
   */
  deferrable?: boolean;
}

/**
 * Triggers a run of another DAG (Airflow's `TriggerDagRunOperator`), pushes its run id as the XCom
 * `trigger_run_id` (and its logical date as `trigger_logical_date_iso`), and with `waitForCompletion`
 * waits for it to end: success when it reaches an allowed state, failure naming the run and its
 * state when it reaches a failed one.
 */
export class TriggerDagRunOperator extends BaseOperator<undefined> {
  readonly triggerDagId: string;
  readonly triggerRunId: string | undefined;
  readonly conf: JsonObject;
  readonly logicalDate: DateTime | undefined;
  readonly resetDagRun: boolean;
  readonly skipWhenAlreadyExists: boolean;
  readonly waitForCompletion: boolean;
  readonly pokeInterval: Duration;
  readonly allowedStates: DagRunStateName[];
  readonly failedStates: DagRunStateName[];
  readonly deferrable: boolean | undefined;

  constructor(options: TriggerDagRunOperatorOptions) {
    super(options);
    const owner = `TriggerDagRunOperator '${options.taskId}'`;
    if (typeof options.triggerDagId !== 'string' || options.triggerDagId === '') {
      throw new TypeError(`${owner}: triggerDagId must name the DAG to trigger, got ${JSON.stringify(options.triggerDagId)}`);
    }
    this.triggerDagId = options.triggerDagId;
    if (options.triggerRunId !== undefined && (typeof options.triggerRunId !== 'string' || options.triggerRunId === '')) {
      throw new TypeError(`${owner}: triggerRunId must be a non-empty string, got ${JSON.stringify(options.triggerRunId)}`);
    }
    this.triggerRunId = options.triggerRunId;
    this.conf = toJsonObject(options.conf ?? {}, `${owner} conf`);
    this.logicalDate = options.logicalDate === undefined ? undefined : toDateTime(options.logicalDate, `${owner} logicalDate`);
    this.resetDagRun = options.resetDagRun ?? false;
    this.skipWhenAlreadyExists = options.skipWhenAlreadyExists ?? false;
    this.waitForCompletion = options.waitForCompletion ?? false;
    this.pokeInterval = toDuration(options.pokeInterval ?? 60, `${owner} pokeInterval`);
    this.allowedStates = checkStates(owner, 'allowedStates', options.allowedStates ?? ['success'], DAG_RUN_STATES) as DagRunStateName[];
    this.failedStates = checkStates(owner, 'failedStates', options.failedStates ?? ['failed'], DAG_RUN_STATES) as DagRunStateName[];
    if (this.allowedStates.length === 0) throw new TypeError(`${owner}: allowedStates must name at least one state`);
    checkDisjoint(owner, { allowedStates: this.allowedStates, failedStates: this.failedStates });
    this.deferrable = options.deferrable;
  }

  override async execute(context: TaskContext): Promise<undefined> {
    let triggered;
    try {
      triggered = await context.dagRuns.trigger({
        dagId: this.triggerDagId,
        ...(this.triggerRunId !== undefined && { runId: this.triggerRunId }),
        conf: this.conf,
        logicalDate: this.logicalDate ?? DateTime.utc(),
        reset: this.resetDagRun,
      });
    } catch (error) {
      if ((error as Error).name !== 'DagRunExistsError') throw error;
      const message = `DAG '${this.triggerDagId}' already has a run '${this.triggerRunId ?? ''}'`;
      if (this.skipWhenAlreadyExists) throw new SkipTask(`${message} (skipWhenAlreadyExists)`);
      throw new Error(`${message}: set resetDagRun to clear and rerun it, or give another triggerRunId`, { cause: error });
    }
    const { runId } = triggered;
    context.log.info({ dagId: this.triggerDagId, runId, reset: !triggered.created }, triggered.created ? 'triggered a run' : 'cleared the existing run to run it again');
    await context.xcomPush(TRIGGER_RUN_ID_KEY, runId);
    await context.xcomPush(TRIGGER_LOGICAL_DATE_KEY, triggered.logicalDate.toUTC().toISO());
    if (!this.waitForCompletion) return undefined;
    if (this.deferrable ?? context.defaults.deferrable) {
      this.defer({
        trigger: new DagStateTrigger({ dagId: this.triggerDagId, runIds: [runId], states: [...this.allowedStates, ...this.failedStates] }),
        method: 'executeComplete',
        kwargs: { runId },
      });
    }
    for (;;) {
      const [run] = await context.dagRuns.states({ dagId: this.triggerDagId, runIds: [runId] });
      if (run && this.#ended(run.state, runId, context)) return undefined;
      await sleep(this.pokeInterval.toMillis(), context.signal);
      if (context.signal.aborted) throw context.signal.reason ?? new Error('task stopped while waiting for the triggered run');
    }
  }

  /** Resumed by the DagStateTrigger when the run ended. */
  executeComplete(context: TaskContext, event: JsonValue | undefined, kwargs: JsonObject): undefined {
    const runId = String(kwargs['runId']);
    const states = (event as { runStates?: Record<string, string> } | undefined)?.runStates ?? {};
    const state = states[runId];
    if (state === undefined || !this.#ended(state, runId, context)) {
      throw new Error(`the trigger for DAG '${this.triggerDagId}' run '${runId}' fired without its end state (event: ${JSON.stringify(event)})`);
    }
    return undefined;
  }

  /** True when the run is in an allowed state; throws when it is in a failed one. */
  #ended(state: string, runId: string, context: TaskContext): boolean {
    if ((this.failedStates as string[]).includes(state)) {
      throw new Error(`DAG '${this.triggerDagId}' run '${runId}' ended ${state} (failedStates: ${this.failedStates.join(', ')})`);
    }
    if ((this.allowedStates as string[]).includes(state)) {
      context.log.info({ dagId: this.triggerDagId, runId, state }, 'the triggered run ended');
      return true;
    }
    return false;
  }
}

function toDateTime(input: DateTime | Date | string, label: string): DateTime {
  const value = DateTime.isDateTime(input) ? input : input instanceof Date ? DateTime.fromJSDate(input) : DateTime.fromISO(String(input), { zone: 'utc', setZone: true });
  if (!value.isValid) throw new TypeError(`${label} must be a date (a luxon DateTime, a Date or ISO 8601), got ${JSON.stringify(input)}`);
  return value.toUTC();
}
