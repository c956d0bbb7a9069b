import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
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
