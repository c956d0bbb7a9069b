import { expect } from 'chai';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import type { Database } from '../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { insertDeferred, statesOf } from './support/deferred.ts';
import { eventually } from './support/events.ts';
import { startTriggerer } from './support/rig.ts';

/**
 * Loses the reply of the first statement whose SQL contains `marker`: the statement runs and commits,
 * then the caller sees a dropped connection — what a backend terminated between its commit and its
 * reply looks like from the client.
 */
class LoseOneReply implements KyselyPlugin {
  readonly #marker: string;
  readonly #pending = new Set<unknown>();
  lost = 0;

  constructor(marker: string) {
    this.#marker = marker;
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (this.lost === 0 && JSON.stringify(args.node).includes(this.#marker)) this.#pending.add(args.queryId);
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (this.#pending.delete(args.queryId) && this.lost === 0) {
      this.lost++;
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: undefined });
    }
    return args.result;
  }
}

function withPlugin(database: Database, plugin: KyselyPlugin): Database {
  return { ...database, db: database.db.withPlugin(plugin) };
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
    const plugin = new LoseOneReply('WITH claimed AS');
    const triggerer = await startTriggerer(withPlugin(t.database, plugin), { pollIntervalMs: 200 });
    await eventually(async () => (await statesOf(t.database, set)).every((s) => s === 'scheduled'), 'every task to resume', 15_000);
    expect(plugin.lost, 'the claim reply was lost once').to.equal(1);
    expect(triggerer.state).to.equal('running');
  });
});
