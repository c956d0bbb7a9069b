import { expect } from 'chai';
import type pg from 'pg';
import type { Database } from '../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { insertDeferred, statesOf } from './support/deferred.ts';
import { eventually } from './support/events.ts';
import { startTriggerer } from './support/rig.ts';

/**
 * The database with a pool that loses the reply of the first named statement `name`: the statement
 * runs and commits, then the caller sees a dropped connection — what a backend terminated between
 * its commit and its reply looks like from the client.
 */
function losingOneReply(database: Database, name: string): { database: Database; lost: () => number } {
  let lost = 0;
  const query = async (config: unknown, values?: unknown): Promise<unknown> => {
    const result = await (database.pool.query as (c: unknown, v?: unknown) => Promise<unknown>)(config, values);
    if (lost === 0 && typeof config === 'object' && config !== null && (config as { name?: unknown }).name === name) {
      lost++;
      throw new Error('Connection terminated unexpectedly');
    }
    return result;
  };
  const pool = new Proxy(database.pool, { get: (target, key, receiver) => (key === 'query' ? query : Reflect.get(target, key, receiver)) as unknown }) as pg.Pool;
  return { database: { ...database, pool }, lost: () => lost };
}

describe('the triggerer when a reply is lost', () => {
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    await stopAll();
    await t.drop();
  });

  it('runs the triggers a claim took even though the claim reported a dropped connection', async () => {
    const set = await insertDeferred(t.database, 5, () => ({ mode: 'fire', afterMs: 50 }));
    const losing = losingOneReply(t.database, 'tsflow_claim_triggers');
    const triggerer = await startTriggerer(losing.database, { pollIntervalMs: 200 });
    await eventually(async () => (await statesOf(t.database, set)).every((s) => s === 'scheduled'), 'every task to resume', 15_000);
    expect(losing.lost(), 'the claim reply was lost once').to.equal(1);
    expect(triggerer.state).to.equal('running');
  });
});
