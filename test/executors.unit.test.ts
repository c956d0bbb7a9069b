import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../src/common/logger.ts';
import { tiKeyString, type TaskInstanceKey } from '../src/db/schema.ts';
import { BaseExecutor, type ExecutorEvent, type Workload } from '../src/executors/base-executor.ts';
import { SequentialExecutor } from '../src/executors/sequential-executor.ts';
import { retryDelay } from '../src/runner/task-runner.ts';
import { BaseOperator, dag } from '../src/sdk/index.ts';

/** Records what it was asked to start; a test finishes workloads by hand. */
class RecordingExecutor extends BaseExecutor {
  readonly started: string[] = [];
  syncs = 0;

  protected override executeAsync(workload: Workload): void {
    this.started.push(workload.key.taskId);
  }

  protected override sync(): void {
    this.syncs++;
  }

  finish(taskId: string, state: ExecutorEvent['state'] = 'success'): void {
    const key = keyOf(taskId);
    this.changeState(key, { key, state });
  }

  override async end(): Promise<void> {}
  override async terminate(): Promise<void> {}
}

const keyOf = (taskId: string): TaskInstanceKey => ({ dagId: 'd', runId: 'r', taskId });

describe('executors (unit, fake clock)', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: Date.parse('2026-03-01T12:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
  });
  afterEach(() => clock.restore());

  /** Queues a workload stamped with the fake clock's time, then lets 1 s pass (so later ones are younger). */
  function enqueue(executor: BaseExecutor, taskId: string, priorityWeight = 1): boolean {
    const queued = executor.queueWorkload({ key: keyOf(taskId), priorityWeight, queuedAt: Date.now(), tryNumber: 0 });
    clock.tick(1000);
    return queued;
  }

  it('opens parallelism − running slots per heartbeat, and more as workloads finish', async () => {
    const executor = new RecordingExecutor({ parallelism: 3, logger: silentLogger() });
    for (const id of ['a', 'b', 'c', 'd', 'e']) enqueue(executor, id);
    expect(executor.openSlots).to.equal(3);

    await executor.heartbeat();
    expect(executor.started).to.deep.equal(['a', 'b', 'c']);
    expect([executor.runningCount, executor.queuedCount, executor.openSlots]).to.deep.equal([3, 2, 0]);
    expect(executor.syncs, 'heartbeat syncs after starting').to.equal(1);

    await executor.heartbeat(); // no slot: nothing starts
    expect(executor.started).to.have.length(3);

    executor.finish('b');
    expect(executor.openSlots).to.equal(1);
    await executor.heartbeat();
    expect(executor.started).to.deep.equal(['a', 'b', 'c', 'd']);
    expect(executor.queuedCount).to.equal(1);
  });

  it('starts everything queued when parallelism is 0 (unlimited)', async () => {
    const executor = new RecordingExecutor({ parallelism: 0, logger: silentLogger() });
    for (let i = 0; i < 50; i++) enqueue(executor, `t${i}`);
    expect(executor.openSlots).to.equal(Number.POSITIVE_INFINITY);
    await executor.heartbeat();
    expect(executor.started).to.have.length(50);
  });

  it('starts the highest priority_weight first, then the longest queued', async () => {
    const executor = new RecordingExecutor({ parallelism: 4, logger: silentLogger() });
    enqueue(executor, 'low_old', 1);
    enqueue(executor, 'high_young', 10);
    enqueue(executor, 'mid_old', 5);
    enqueue(executor, 'low_young', 1);
    enqueue(executor, 'mid_young', 5);
    await executor.heartbeat();
    expect(executor.started).to.deep.equal(['high_young', 'mid_old', 'mid_young', 'low_old']);
    executor.finish('high_young');
    await executor.heartbeat();
    expect(executor.started.at(-1)).to.equal('low_young');
  });

  it('refuses a task instance already queued or running, and takes it again once it finished', async () => {
    const executor = new RecordingExecutor({ parallelism: 1, logger: silentLogger() });
    expect(enqueue(executor, 'a')).to.equal(true);
    expect(enqueue(executor, 'a'), 'already queued').to.equal(false);
    expect(executor.queuedCount).to.equal(1);
    await executor.heartbeat();
    expect(enqueue(executor, 'a'), 'already running').to.equal(false);
    expect(executor.hasTask(keyOf('a'))).to.equal(true);
    executor.finish('a');
    expect(executor.hasTask(keyOf('a'))).to.equal(false);
    expect(enqueue(executor, 'a'), 'finished, so it may run again').to.equal(true);
  });

  it('buffers finished workloads until the scheduler drains them, and says when to look', async () => {
    const executor = new RecordingExecutor({ parallelism: 2, logger: silentLogger() });
    const onChange = sinon.spy();
    executor.onChange = onChange;
    enqueue(executor, 'a');
    enqueue(executor, 'b');
    await executor.heartbeat();
    executor.finish('a');
    executor.finish('b', 'failed');
    expect(onChange.callCount).to.equal(2);
    expect(executor.getEventBuffer().map((e) => `${e.key.taskId}:${e.state}`)).to.deep.equal(['a:success', 'b:failed']);
    expect(executor.getEventBuffer(), 'drained').to.deep.equal([]);
  });

  it('reports a workload that could not start as failed and frees its slot', async () => {
    class Broken extends RecordingExecutor {
      protected override executeAsync(): void {
        throw new Error('no worker');
      }
    }
    const executor = new Broken({ parallelism: 1, logger: silentLogger() });
    enqueue(executor, 'a');
    await executor.heartbeat();
    expect(executor.runningCount).to.equal(0);
    expect(executor.getEventBuffer()).to.deep.equal([{ key: keyOf('a'), state: 'failed', info: 'could not start: no worker' }]);
  });

  it('refuses a parallelism that is not a whole number ≥ 0', () => {
    expect(() => new RecordingExecutor({ parallelism: -1, logger: silentLogger() })).to.throw(RangeError, 'got -1');
    expect(() => new RecordingExecutor({ parallelism: 1.5, logger: silentLogger() })).to.throw(RangeError, 'got 1.5');
  });

  it('SequentialExecutor: one at a time, and a run that breaks after starting is reported with its try', async () => {
    const runs: string[] = [];
    const executor = new SequentialExecutor({
      logger: silentLogger(),
      runTask: async (key, _signal, onState) => {
        runs.push(key.taskId);
        onState({ key, state: 'running', tryNumber: 3 });
        throw new Error('database went away');
      },
    });
    expect(executor.parallelism).to.equal(1);
    enqueue(executor, 'a');
    enqueue(executor, 'b');
    await executor.heartbeat();
    expect(runs).to.deep.equal(['a']);
    await executor.end();
    expect(executor.getEventBuffer()).to.deep.equal([{ key: keyOf('a'), state: 'failed', info: 'database went away', tryNumber: 3 }]);
    expect(tiKeyString(keyOf('a'))).to.equal('d/r/a');
  });

  it('retryDelay: fixed, or doubling per try with jitter up to maxRetryDelay', () => {
    class Noop extends BaseOperator {
      override execute(): void {}
    }
    const tasks = dag({ dagId: 'retry_delays' }, () => {
      new Noop({ taskId: 'fixed', retryDelay: 10 });
      new Noop({ taskId: 'backoff', retryDelay: 10, retryExponentialBackoff: true, maxRetryDelay: 60 });
    }).tasks;
    const fixed = tasks.get('fixed') as BaseOperator;
    const backoff = tasks.get('backoff') as BaseOperator;
    expect(retryDelay(fixed.settings, 1).as('seconds')).to.equal(10);
    expect(retryDelay(fixed.settings, 5).as('seconds')).to.equal(10);
    const random = sinon.stub(Math, 'random');
    try {
      random.returns(0.999999);
      expect(retryDelay(backoff.settings, 1).as('seconds')).to.be.closeTo(10, 0.01);
      expect(retryDelay(backoff.settings, 2).as('seconds')).to.be.closeTo(20, 0.01);
      expect(retryDelay(backoff.settings, 3).as('seconds')).to.be.closeTo(40, 0.01);
      expect(retryDelay(backoff.settings, 4).as('seconds'), 'capped by maxRetryDelay').to.equal(60);
      random.returns(0);
      expect(retryDelay(backoff.settings, 3).as('seconds'), 'jitter: at least half').to.equal(20);
    } finally {
      random.restore();
    }
  });
});
