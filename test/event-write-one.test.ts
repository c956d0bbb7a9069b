import { expect } from 'chai';
import { registerJob } from '../src/db/jobs.ts';
import { submitOneOutcome, submitTriggerOutcomes } from '../src/db/triggers.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { insertDeferred } from './support/deferred.ts';
import { taskInstance } from './support/rig.ts';

/**
 * The prepared one-outcome statement keeps the batch statement's fence: only the owner's outcome
 * lands, only on a task instance still deferred, and an event and a failure are stored the same way.
 */
describe('the one-outcome event write', () => {
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    await t.drop();
  });

  const owned = async (count: number) => {
    const set = await insertDeferred(t.database, count, () => ({ mode: 'hang' }));
    const jobId = await registerJob(t.database.db, { jobType: 'triggerer', hostname: 'test', pid: process.pid });
    await t.database.db.updateTable('trigger').set({ triggerer_id: jobId }).execute();
    return { ...set, jobId };
  };

  it('stores an event and a failure exactly as the batch statement does', async () => {
    const { keys, triggerIds, jobId } = await owned(4);
    const [a, b, c, d] = triggerIds as [number, number, number, number];
    await submitOneOutcome(t.database.pool, jobId, { triggerId: a, kind: 'event', payload: { n: 1 } });
    await submitOneOutcome(t.database.pool, jobId, { triggerId: b, kind: 'failure', payload: { error: 'boom', traceback: 'at x' } });
    await submitTriggerOutcomes(t.database.db, jobId, [{ triggerId: c, kind: 'event', payload: { n: 1 } }]);
    await submitTriggerOutcomes(t.database.db, jobId, [{ triggerId: d, kind: 'failure', payload: { error: 'boom', traceback: 'at x' } }]);
    const [ta, tb, tc, td] = await Promise.all(keys.map((key) => taskInstance(t.database, key)));
    for (const ti of [ta, tb, tc, td]) expect(ti?.state).to.equal('scheduled');
    expect([ta?.next_kwargs?.['event'], ta?.next_method]).to.deep.equal([tc?.next_kwargs?.['event'], tc?.next_method]);
    expect(ta?.next_kwargs).to.deep.include({ event: { n: 1 } });
    expect({ ...tb?.next_kwargs, method: tb?.next_method }).to.deep.equal({ ...td?.next_kwargs, method: td?.next_method });
    expect(tb?.next_method).to.equal('__fail__');
  });

  it('refuses a triggerer that no longer owns the trigger, and changes nothing for a duplicate', async () => {
    const { keys, triggerIds, jobId } = await owned(1);
    const [id] = triggerIds as [number];
    const stale = await submitOneOutcome(t.database.pool, jobId + 1, { triggerId: id, kind: 'event', payload: 'late' });
    expect(stale.applied.size, 'a stale owner is fenced').to.equal(0);
    expect((await taskInstance(t.database, keys[0]!)).state).to.equal('deferred');
    const first = await submitOneOutcome(t.database.pool, jobId, { triggerId: id, kind: 'event', payload: 'first' });
    expect([...first.applied, first.resumed]).to.deep.equal([id, 1]);
    const again = await submitOneOutcome(t.database.pool, jobId, { triggerId: id, kind: 'event', payload: 'second' });
    expect(again.resumed, 'a duplicate resumes nothing').to.equal(0);
    expect((await taskInstance(t.database, keys[0]!)).next_kwargs).to.deep.include({ event: 'first' });
  });
});
