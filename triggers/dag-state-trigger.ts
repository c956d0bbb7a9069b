import { DAG_RUN_STATES, type DagRunStateName, type ExternalRunState } from '../src/sdk/cross-dag.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { BaseTrigger, TriggerEvent, type TriggerRuntime } from '../src/sdk/trigger.ts';
import { refuseUnknownFields } from '../src/sdk/trigger-kwargs.ts';
import { stringList } from './string-list.ts';

export interface DagStateTriggerKwargs {
  [key: string]: string | string[];
  dagId: string;
  runIds: string[];
  /** Fire once every run is in one of these states. */
  states: DagRunStateName[];
}

/** The event: each run's state when the trigger fired. */
export interface DagStateEventPayload {
  [key: string]: string | Record<string, string>;
  dagId: string;
  runStates: Record<string, string>;
}

/**
 * Fires when every run `runIds` of `dagId` is in one of `states` (Airflow's `DagStateTrigger`, which
 * TriggerDagRunOperator defers to). It does not poll: it waits on the triggerer's run watcher, which
 * the NOTIFY sent with a run's end wakes, so it fires within a round trip of the run ending.
 */
export class DagStateTrigger extends BaseTrigger<DagStateTriggerKwargs> {
  static override readonly classpath: string = 'tsflow.triggers.DagStateTrigger';

  constructor(kwargs: DagStateTriggerKwargs) {
    const label = new.target.name;
    if (typeof kwargs !== 'object' || kwargs === null) throw new InvalidTriggerKwargsError(`${label} needs kwargs { dagId, runIds, states }`);
    refuseUnknownFields(kwargs, ['dagId', 'runIds', 'states'], label);
    if (typeof kwargs.dagId !== 'string' || kwargs.dagId === '') throw new InvalidTriggerKwargsError(`${label} dagId must be a DAG id, got ${JSON.stringify(kwargs.dagId)}`);
    const runIds = stringList(kwargs.runIds, `${label} runIds`, true);
    const states = stringList(kwargs.states, `${label} states`, true, DAG_RUN_STATES) as DagRunStateName[];
    super({ dagId: kwargs.dagId, runIds, states });
  }

  override async run(signal: AbortSignal, runtime?: TriggerRuntime): Promise<TriggerEvent<DagStateEventPayload> | undefined> {
    if (!runtime?.watchStates) throw new Error(`${this.constructor.name} waits on the triggerer's run watcher: run it in a triggerer (tsflow triggerer, scheduler or standalone)`);
    const { dagId, runIds, states } = this.kwargs;
    const runStates = await runtime.watchStates({ dagId, runIds }, (runs) => settled(runs, runIds, states), signal);
    return runStates && TriggerEvent.trusted({ dagId, runStates });
  }
}

function settled(runs: readonly ExternalRunState[], runIds: readonly string[], states: readonly string[]): Record<string, string> | undefined {
  const byId = new Map(runs.map((r) => [r.runId, r.state]));
  const result: Record<string, string> = {};
  for (const runId of runIds) {
    const state = byId.get(runId);
    if (state === undefined || !states.includes(state)) return undefined;
    result[runId] = state;
  }
  return result;
}
