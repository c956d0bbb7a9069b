import { DagBag } from '../../src/dag-bag/dag-bag.ts';
import { createDagRun, upsertDags } from '../../src/db/dag-runs.ts';
import type { DagRunState, TaskInstanceKey } from '../../src/db/schema.ts';
import { BaseOperator, type BaseOperatorOptions } from '../../src/sdk/base-operator.ts';
import type { TaskRuntimeDefaults } from '../../src/sdk/context.ts';
import type { Dag } from '../../src/sdk/dag.ts';
import type { TestDatabase } from './database.ts';
import { eventually, waitForEvent } from './events.ts';
import { startScheduler, startTriggerer } from './rig.ts';

/** One line of what a user would see: a task's state change, or its trigger firing or failing. */
export interface Seen {
  task: string;
  state: string;
  tryNumber?: number;
}

export interface DagRunOutcome {
  state: DagRunState;
  seen: Seen[];
  runId: string;
}

let runCounter = 0;

/**
 * Runs `dag` once through a scheduler (one-slot SequentialExecutor) and a triggerer, recording every
 * state change in order, and resolves when the run ends. `onSeen` may act on a state as it happens.
 */
export async function runThroughScheduler(
  t: TestDatabase,
  dag: Dag,
  options: { defaults?: TaskRuntimeDefaults; onSeen?: (seen: Seen, key: TaskInstanceKey) => void; timeoutMs?: number } = {},
): Promise<DagRunOutcome> {
  const runId = `run_${++runCounter}`;
  const { scheduler, executor } = await startScheduler(t.database, DagBag.of([dag]), { defaults: options.defaults });
  const triggerer = await startTriggerer(t.database);
  const seen: Seen[] = [];
  const record = (key: TaskInstanceKey | undefined, state: string, tryNumber?: number) => {
    if (!key || key.runId !== runId || key.dagId !== dag.dagId) return;
    const line = { task: key.taskId, state, ...(tryNumber === undefined ? {} : { tryNumber }) };
    seen.push(line);
    options.onSeen?.(line, key);
  };
  scheduler.on('ti:state', ({ key, state, tryNumber }) => record(key, state, tryNumber));
  triggerer.on('trigger:fired', ({ task }) => record(task, 'trigger fired'));
  triggerer.on('trigger:failed', ({ task }) => record(task, 'trigger failed'));
  const finished = waitForEvent(scheduler, 'run:state', (r) => r.runId === runId && r.dagId === dag.dagId && r.state !== 'running', options.timeoutMs ?? 15_000);
  await upsertDags(t.database.db, [{ dagId: dag.dagId, fileloc: '' }]);
  await createDagRun(t.database.db, { dagId: dag.dagId, runId, conf: {}, logicalDate: new Date() });
  const { state } = await finished;
  // The run can be marked finished a moment before the runner reports its last task's state.
  await eventually(async () => executor.runningCount === 0 && executor.queuedCount === 0, 'the executor to be idle');
  return { state, seen, runId };
}

/** Index of the first line after `from` for `task` in `state`; -1 if none. */
export function indexOf(seen: readonly Seen[], task: string, state: string, from = -1): number {
  return seen.findIndex((line, index) => index > from && line.task === task && line.state === state);
}

/** A task that calls a function: what makes a sensor's condition come true, from inside the DAG. */
export class CallOperator extends BaseOperator<null> {
  readonly #fn: () => unknown;

  constructor(options: BaseOperatorOptions & { fn: () => unknown }) {
    super(options);
    this.#fn = options.fn;
  }

  override async execute(): Promise<null> {
    await this.#fn();
    return null;
  }
}
