import { expect } from 'chai';
import { sql } from 'kysely';
import { seedDeferred } from '../bench/lib/seed.ts';
import { registerJob } from '../src/db/jobs.ts';
import { submitTriggerOutcomes } from '../src/db/triggers.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

describe('the event write on a large deferred table', () => {
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    await t.drop();
  });

  /** Index tuples read so far, as the server's statistics say once this session's counters are flushed. */
  const tuplesRead = async (index: string): Promise<number> => {
    await sql`SELECT pg_stat_clear_snapshot()`.execute(t.database.db);
    const { rows } = await sql<{ n: string }>`SELECT idx_tup_read AS n FROM pg_stat_user_indexes WHERE indexrelname = ${index}`.execute(t.database.db);
    return Number(rows[0]?.n ?? Number.NaN);
  };

  it('finds each task instance through its trigger, never by scanning every deferred one', async () => {
    // 10,000 tasks deferred at once and never analysed: the shape in which the planner used to AND
    // the trigger index with ti_trigger_timeout_idx and read all 10,000 deferred rows per event.
    const size = 10_000;
    const moment = new Date(Date.now() + 3_600_000).toISOString();
    await seedDeferred(t.database, {
      dagId: 'wide',
      layout: { kind: 'one-run', runId: 'wide' },
      classpath: 'tsflow.triggers.DateTimeTrigger',
      kwargs: Array.from({ length: size }, () => ({ moment })),
      notify: false,
      vacuum: false,
    });
    const jobId = await registerJob(t.database.db, { jobType: 'triggerer', hostname: 'test', pid: process.pid });
    await sql`UPDATE trigger SET triggerer_id = ${jobId}`.execute(t.database.db);
    const ids = (await sql<{ id: number }>`SELECT id FROM trigger ORDER BY id`.execute(t.database.db)).rows.map((r) => Number(r.id));

    // One connection, so its statistics can be flushed before they are read.
    const writer = t.open(1);
    const before = { timeout: await tuplesRead('ti_trigger_timeout_idx'), trigger: await tuplesRead('ti_trigger_idx') };
    for (let i = 0; i < size; i += 2000) {
      const batch = ids.slice(i, i + 2000).map((triggerId) => ({ triggerId, kind: 'event' as const, payload: { moment } }));
      const result = await submitTriggerOutcomes(writer.db, jobId, batch);
      expect(result.resumed).to.equal(batch.length);
    }
    await sql`SELECT pg_stat_force_next_flush()`.execute(writer.db);

    const read = { timeout: (await tuplesRead('ti_trigger_timeout_idx')) - before.timeout, trigger: (await tuplesRead('ti_trigger_idx')) - before.trigger };
    expect(read.timeout, 'deferred rows read through ti_trigger_timeout_idx').to.equal(0);
    expect(read.trigger, 'index tuples read to find 10,000 task instances').to.be.within(size, 2 * size);
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM task_instance WHERE state = 'scheduled' AND next_kwargs ? 'event'`.execute(t.database.db);
    expect(rows[0]?.n).to.equal(size);
  });

  /** Tuples read from a table by sequential scans, and fetched through its indexes, as the statistics say. */
  const tableReads = async (table: string): Promise<{ seq: number; fetched: number }> => {
    await sql`SELECT pg_stat_clear_snapshot()`.execute(t.database.db);
    const { rows } = await sql<{ seq: string; fetched: string }>`
      SELECT seq_tup_read AS seq, coalesce(idx_tup_fetch, 0) AS fetched FROM pg_stat_user_tables WHERE relname = ${table}`.execute(t.database.db);
    return { seq: Number(rows[0]?.seq ?? Number.NaN), fetched: Number(rows[0]?.fetched ?? Number.NaN) };
  };

  it('reads what one event needs, not every wait held, analysed or not', async () => {
    // 20,000 waits held by one triggerer. The statement used to join a JSON document the planner
    // took for 100 rows, and scanned both tables whole for a single event.
    const size = 20_000;
    const moment = new Date(Date.now() + 3_600_000).toISOString();
    await seedDeferred(t.database, {
      dagId: 'held',
      layout: { kind: 'one-run', runId: 'held' },
      classpath: 'tsflow.triggers.DateTimeTrigger',
      kwargs: Array.from({ length: size }, () => ({ moment })),
      notify: false,
      vacuum: false,
    });
    const jobId = await registerJob(t.database.db, { jobType: 'triggerer', hostname: 'test', pid: process.pid });
    await sql`UPDATE trigger SET triggerer_id = ${jobId}`.execute(t.database.db);
    const ids = (await sql<{ id: number }>`SELECT id FROM trigger ORDER BY id`.execute(t.database.db)).rows.map((r) => Number(r.id));
    const writer = t.open(1);

    const writeOne = async (triggerId: number): Promise<Record<'task_instance' | 'trigger', { seq: number; fetched: number }>> => {
      const before = { task_instance: await tableReads('task_instance'), trigger: await tableReads('trigger') };
      const result = await submitTriggerOutcomes(writer.db, jobId, [{ triggerId, kind: 'event', payload: { moment } }]);
      expect(result.resumed).to.equal(1);
      await sql`SELECT pg_stat_force_next_flush()`.execute(writer.db);
      const after = { task_instance: await tableReads('task_instance'), trigger: await tableReads('trigger') };
      const delta = (table: 'task_instance' | 'trigger') => ({
        seq: after[table].seq - before[table].seq,
        fetched: after[table].fetched - before[table].fetched,
      });
      return { task_instance: delta('task_instance'), trigger: delta('trigger') };
    };

    // Never analysed (all 20,000 deferred at once, before autovacuum's first look), then analysed.
    const fresh = await writeOne(ids[size / 2] as number);
    await sql`ANALYZE task_instance, trigger`.execute(t.database.db);
    const analysed = await writeOne(ids[size / 2 + 1] as number);
    for (const [when, reads] of [['before ANALYZE', fresh], ['after ANALYZE', analysed]] as const) {
      expect(reads.task_instance.seq, `task instances read by a sequential scan, ${when}`).to.equal(0);
      expect(reads.trigger.seq, `triggers read by a sequential scan, ${when}`).to.equal(0);
      // One row of each through its index (a row version or two more is fine; 20,000 is not).
      expect(reads.task_instance.fetched, `task instances fetched through an index, ${when}`).to.be.within(1, 3);
      expect(reads.trigger.fetched, `triggers fetched through an index, ${when}`).to.be.within(1, 3);
    }
  });
});
