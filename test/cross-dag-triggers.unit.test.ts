import { expect } from 'chai';
import { DagStateTrigger, WorkflowTrigger, type DagStateTriggerKwargs, type WorkflowTriggerKwargs } from '../triggers/index.ts';
import type { ExternalRunState, ExternalStateQuery } from '../src/sdk/cross-dag.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import type { TriggerRuntime } from '../src/sdk/trigger.ts';

/** A runtime whose watcher answers from a fixed list of runs, recording the queries it was given. */
function runtimeWith(runs: ExternalRunState[], queries: ExternalStateQuery[]): TriggerRuntime {
  return {
    sleepUntil: async () => undefined,
    watchStates: async (query, decide) => {
      queries.push(query);
      return decide(runs);
    },
  };
}

const run = (runId: string, state: ExternalRunState['state'], tasks: ExternalRunState['tasks'] = {}): ExternalRunState => ({
  dagId: 'other',
  runId,
  logicalDate: '2026-01-01T00:00:00.000Z',
  state,
  tasks,
});

describe('DagStateTrigger and WorkflowTrigger', () => {
  it('rebuild from what they serialize, and refuse bad kwargs naming the field', () => {
    const trigger = new DagStateTrigger({ dagId: 'other', runIds: ['r1'], states: ['success', 'failed'] });
    const [classpath, kwargs] = trigger.serialize();
    expect(classpath).to.equal('tsflow.triggers.DagStateTrigger');
    expect(new DagStateTrigger(kwargs as DagStateTriggerKwargs).kwargs).to.deep.equal(kwargs);
    expect(() => new DagStateTrigger({ dagId: 'other', runIds: [], states: ['success'] })).to.throw(InvalidTriggerKwargsError, /runIds must name at least one/);
    expect(() => new DagStateTrigger({ dagId: 'other', runIds: ['r1'], states: ['done' as 'success'] })).to.throw(InvalidTriggerKwargsError, /'done'/);
    expect(() => new DagStateTrigger({ dagId: 'other', runIds: ['r1'], states: ['success'], pollInterval: '5' })).to.throw(InvalidTriggerKwargsError, /no field 'pollInterval'/);
    const base: WorkflowTriggerKwargs = {
      externalDagId: 'other',
      logicalDates: ['2026-01-01T00:00:00Z'],
      externalTaskIds: ['a'],
      allowedStates: ['success'],
      failedStates: ['upstream_failed'],
      skippedStates: [],
    };
    expect(new WorkflowTrigger(new WorkflowTrigger(base).serialize()[1] as WorkflowTriggerKwargs).kwargs).to.deep.equal(base);
    expect(() => new WorkflowTrigger({ ...base, logicalDates: ['yesterday'] })).to.throw(InvalidTriggerKwargsError, /'yesterday'/);
    // Without task ids the states are a run's: upstream_failed is not one.
    expect(() => new WorkflowTrigger({ ...base, externalTaskIds: [] })).to.throw(InvalidTriggerKwargsError, /'upstream_failed'/);
  });

  it('fire with each run state once every run is in the states, through the runtime watcher', async () => {
    const queries: ExternalStateQuery[] = [];
    const trigger = new DagStateTrigger({ dagId: 'other', runIds: ['r1', 'r2'], states: ['success', 'failed'] });
    const event = await trigger.run(new AbortController().signal, runtimeWith([run('r1', 'success'), run('r2', 'failed')], queries));
    expect(event?.payload).to.deep.equal({ dagId: 'other', runStates: { r1: 'success', r2: 'failed' } });
    expect(queries).to.deep.equal([{ dagId: 'other', runIds: ['r1', 'r2'] }]);
    const waiting = await trigger.run(new AbortController().signal, runtimeWith([run('r1', 'success'), run('r2', 'running')], []));
    expect(waiting).to.equal(undefined);
  });

  it('WorkflowTrigger reports success, failed or skipped', async () => {
    const kwargs: WorkflowTriggerKwargs = {
      externalDagId: 'other',
      logicalDates: ['2026-01-01T00:00:00Z'],
      externalTaskIds: ['a', 'b'],
      allowedStates: ['success'],
      failedStates: ['failed'],
      skippedStates: ['skipped'],
    };
    const status = async (tasks: ExternalRunState['tasks']) =>
      (await new WorkflowTrigger(kwargs).run(new AbortController().signal, runtimeWith([run('r1', 'running', tasks)], [])))?.payload;
    expect(await status({ a: 'success', b: 'success' })).to.deep.equal({ status: 'success' });
    expect(await status({ a: 'success', b: 'failed' })).to.deep.equal({ status: 'failed' });
    expect(await status({ a: 'skipped', b: 'running' })).to.deep.equal({ status: 'skipped' });
    expect(await status({ a: 'success', b: 'running' })).to.equal(undefined);
  });

  it('outside a triggerer (no run watcher) fail saying where they can run', async () => {
    const trigger = new DagStateTrigger({ dagId: 'other', runIds: ['r1'], states: ['success'] });
    const error = await trigger.run(new AbortController().signal).then(() => undefined, (e: unknown) => e as Error);
    expect(error?.message).to.match(/run it in a triggerer/);
  });
});
