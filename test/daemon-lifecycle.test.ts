import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import { Daemon } from '../src/daemon/daemon.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { BaseExecutor, type Workload } from '../src/executors/base-executor.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/** An executor that cannot start (its worker pool, say, cannot be created). */
class BrokenExecutor extends BaseExecutor {
  constructor() {
    super({ parallelism: 1, logger: silentLogger() });
  }
  override async start(): Promise<void> {
    throw new Error('the executor cannot start');
  }
  protected override executeAsync(_workload: Workload): void {}
  override async end(): Promise<void> {}
  override async terminate(): Promise<void> {}
}

/** A daemon that records its start-up and shutdown steps. */
class Recorder extends Daemon<Record<string, never>> {
  readonly steps: string[] = [];
  readonly #failAt: string | undefined;

  constructor(failAt?: string) {
    super('recorder', silentLogger());
    this.#failAt = failAt;
  }

  protected override async onStart(): Promise<void> {
    for (const name of ['first', 'second', 'third']) {
      if (name === this.#failAt) throw new Error(`${name} failed`);
      this.steps.push(`start ${name}`);
      this.onStop(name, () => {
        this.steps.push(`stop ${name}`);
        if (name === 'second' && this.#failAt === 'stop second') throw new Error('stop second failed');
      });
    }
  }
}

describe('the daemon skeleton', () => {
  it('undoes its start-up in reverse order, once, however often stop is called', async () => {
    const daemon = new Recorder();
    await Promise.all([daemon.start(), daemon.start()]);
    expect(daemon.state).to.equal('running');
    await Promise.all([daemon.stop(), daemon.stop()]);
    await daemon.stop();
    expect(daemon.steps).to.deep.equal(['start first', 'start second', 'start third', 'stop third', 'stop second', 'stop first']);
    expect(daemon.state).to.equal('stopped');
  });

  it('undoes what a failed start had done, and reports the start failure', async () => {
    const daemon = new Recorder('third');
    let failure: unknown;
    await daemon.start().catch((error: unknown) => (failure = error));
    expect((failure as Error).message).to.equal('third failed');
    expect(daemon.steps).to.deep.equal(['start first', 'start second', 'stop second', 'stop first']);
    expect(daemon.state).to.equal('stopped');
    await daemon.stop(); // nothing left to do
    expect(daemon.steps).to.have.length(4);
  });

  it('runs every shutdown step even when one fails, then reports the failure', async () => {
    const daemon = new Recorder('stop second');
    await daemon.start();
    let failure: unknown;
    await daemon.stop().catch((error: unknown) => (failure = error));
    expect(String((failure as Error).message)).to.contain('stop second failed');
    expect(daemon.steps.slice(3)).to.deep.equal(['stop third', 'stop second', 'stop first']);
  });

  it('refuses a second start after stop', async () => {
    const daemon = new Recorder();
    await daemon.start();
    await daemon.stop();
    await daemon.start().then(
      () => expect.fail('started twice'),
      () => undefined,
    );
  });
});

describe('a scheduler whose start fails', () => {
  let t: TestDatabase;
  before(async () => {
    t = await createTestDatabase();
  });
  after(async () => {
    await t.drop();
  });

  it('ends its job row instead of leaving a live-looking scheduler behind', async () => {
    const scheduler = new Scheduler({ database: t.database, dagBag: DagBag.of([]), executor: new BrokenExecutor(), logger: silentLogger() });
    let failure: unknown;
    await scheduler.start().catch((error: unknown) => (failure = error));
    expect((failure as Error).message).to.equal('the executor cannot start');
    expect(scheduler.state).to.equal('stopped');
    const job = await t.database.db.selectFrom('job').select(['state', 'end_date']).where('id', '=', scheduler.jobId!).executeTakeFirstOrThrow();
    expect(job.state).to.equal('success');
    expect(job.end_date).to.be.instanceOf(Date);
  });
});
