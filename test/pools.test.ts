import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { setPool } from '../src/db/pools.ts';
import { enqueueScheduled, type PoolWait } from '../src/db/scheduling.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { sleep } from '../src/common/sleep.ts';
import { BaseOperator, dag, type Dag, type TaskContext } from '../src/sdk/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll, track } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { InProcessExecutor } from './support/in-process-executor.ts';
import { createRun, startNotifier, startScheduler } from './support/rig.ts';
import { captureLogs } from './support/unit.ts';

class Nap extends BaseOperator {
  readonly ms: number;
  constructor(options: ConstructorParameters<typeof BaseOperator>[0] & { ms?: number }) {
    super(options);
    this.ms = options.ms ?? 0;
  }
  override async execute(context: TaskContext): Promise<void> {
    await sleep(this.ms, context.signal);
  }
}

describe('pools: the scheduler queues within each pool’s open slots', () => {
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    await stopAll();
    await t.drop();
  });

  /** Σ pool_slots of the pool's queued and running task instances. */
  async function occupied(pool: string): Promise<number> {
    const { rows } = await sql<{ n: number }>`
      SELECT coalesce(sum(pool_slots), 0)::int AS n FROM task_instance WHERE pool = ${pool} AND state IN ('queued', 'running')`.execute(t.database.db);
    return rows[0]!.n;
  }

  /** Marks the named task instances of the run scheduled (as the scheduler does when their upstream is done). */
  async function schedule(runId: string, taskIds: readonly string[], resumed: readonly string[] = []): Promise<void> {
    await sql`UPDATE task_instance SET state = 'scheduled', scheduled_at = clock_timestamp(),
        next_method = CASE WHEN task_id = ANY(${[...resumed]}::text[]) THEN 'executeComplete' END
      WHERE run_id = ${runId} AND task_id = ANY(${[...taskIds]}::text[])`.execute(t.database.db);
  }

  async function queuedIds(runId: string): Promise<string[]> {
    const rows = await t.database.db.selectFrom('task_instance').select('task_id').where('run_id', '=', runId).where('state', '=', 'queued').orderBy('task_id').execute();
    return rows.map((r) => r.task_id);
  }

  it('a pool of 3 slots never has more than 3 task instances queued or running across two schedulers', async function () {
    this.timeout(40_000);
    await setPool(t.database.db, { pool: 'three', slots: 3 });
    // Three DAGs share the pool, so the DAG row locks alone would not keep the schedulers apart.
    const dags = [0, 1, 2].map((d) =>
      dag({ dagId: `pooled_${d}`, schedule: null, maxActiveTasks: 16 }, () => {
        for (let i = 0; i < 4; i++) new Nap({ taskId: `nap_${i}`, ms: 150, pool: 'three' });
      }),
    );
    const bag = DagBag.of(dags);
    const second = t.open(5);
    await Promise.all([t.database, second].map((db) => startScheduler(db, bag, { pollIntervalMs: 1000 }, new InProcessExecutor(db, bag, 8))));
    for (const d of dags) await createRun(t.database, d, 'pooled_run');
    let max = 0;
    let samples = 0;
    const deadline = Date.now() + 30_000;
    const queuedBy = new Set<number>();
    for (;;) {
      max = Math.max(max, await occupied('three'));
      samples++;
      const rows = await t.database.db.selectFrom('task_instance').select(['state', 'queued_by_job_id']).execute();
      for (const r of rows) if (r.queued_by_job_id !== null) queuedBy.add(r.queued_by_job_id);
      if (rows.every((r) => r.state === 'success') || Date.now() > deadline) break;
      await sleep(5);
    }
    const states = await t.database.db.selectFrom('task_instance').select('state').execute();
    expect(states.map((s) => s.state)).to.deep.equal(Array(12).fill('success'));
    expect(samples, 'the pool was sampled often').to.be.above(20);
    expect(max, 'slots taken at once').to.equal(3);
    expect(queuedBy.size, 'both schedulers queued tasks').to.equal(2);
  });

  it('an enqueue that waited for a pool counts what the other scheduler queued meanwhile', async function () {
    // Deterministic form of the race above: "another scheduler" (a raw connection) holds the pool's
    // row while it queues 3 task instances of its DAG; our enqueue, for another DAG, must wait for
    // it and then see the pool full — not count with the snapshot it had before the wait.
    await setPool(t.database.db, { pool: 'three', slots: 3 });
    const dags = [0, 1].map((d) =>
      dag({ dagId: `racing_${d}`, schedule: null }, () => {
        for (let i = 0; i < 3; i++) new Nap({ taskId: `nap_${i}`, pool: 'three' });
      }),
    );
    for (const d of dags) await createRun(t.database, d, 'race');
    await sql`UPDATE task_instance SET state = 'scheduled', scheduled_at = now()`.execute(t.database.db);
    const watcher = t.open(2);
    const other = new pg.Client({ connectionString: t.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT 1 FROM dag WHERE dag_id = 'racing_1' FOR UPDATE`);
      await other.query(`SELECT 1 FROM pool WHERE pool = 'three' FOR UPDATE`);
      const ours = enqueueScheduled(t.database.db, 1, null, ['racing_0']);
      await eventually(async () => {
        const { rows } = await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`.execute(watcher.db);
        return rows[0]!.n > 0;
      }, 'our enqueue waiting for the pool row', 5000);
      await other.query(`UPDATE task_instance SET state = 'queued' WHERE dag_id = 'racing_1'`);
      await other.query('COMMIT');
      expect(await ours, 'our enqueue queued nothing: the pool was full when it got the lock').to.deep.equal([]);
      expect(await occupied('three')).to.equal(3);
    } finally {
      await other.end();
    }
  });

  it('a task naming a missing pool waits, warned once; creating the pool wakes the scheduler and it runs', async function () {
    this.timeout(20_000);
    const waiting = dag({ dagId: 'waits_for_pool', schedule: null }, () => {
      new Nap({ taskId: 'pooled', pool: 'later_pool' });
      for (let i = 0; i < 3; i++) new Nap({ taskId: `free_${i}`, ms: 50 });
    });
    const bag = DagBag.of([waiting]);
    const logs = captureLogs('warn');
    const scheduler = track(
      new Scheduler(
        { database: t.database, dagBag: bag, executor: new InProcessExecutor(t.database, bag, 4), logger: logs.logger, notifier: await startNotifier(t.database) },
        { pollIntervalMs: 60_000 }, // only a NOTIFY wakes it in time
      ),
    );
    await scheduler.start();
    await createRun(t.database, waiting, 'run');
    const stateOf = async (taskId: string) =>
      (await t.database.db.selectFrom('task_instance').select('state').where('task_id', '=', taskId).executeTakeFirstOrThrow()).state;
    await eventually(async () => (await Promise.all([0, 1, 2].map((i) => stateOf(`free_${i}`)))).every((s) => s === 'success'), 'the other tasks done', 10_000);
    expect(await stateOf('pooled')).to.equal('scheduled');
    const warnings = logs.lines.filter((l) => l['pool'] === 'later_pool');
    expect(warnings, 'warned once over several passes').to.have.length(1);
    expect(String(warnings[0]!['msg'])).to.contain('pool that does not exist');
    await sleep(300); // the scheduler settles: nothing left to wake it but a NOTIFY (or its 5 s heartbeat)
    await setPool(t.database.db, { pool: 'later_pool', slots: 1 });
    await eventually(async () => (await stateOf('pooled')) === 'success' || undefined, 'the pooled task run once its pool exists', 2000);
  });

  describe('enqueue (one scheduler pass on prepared task instances)', () => {
    async function prepare(build: () => void, runId = 'run'): Promise<Dag> {
      const d = dag({ dagId: 'prepared', schedule: null, maxActiveTasks: 16 }, build);
      await createRun(t.database, d, runId);
      return d;
    }

    it('pool_slots count: a task taking 2 slots fills 2 of them', async () => {
      await setPool(t.database.db, { pool: 'five', slots: 5 });
      await prepare(() => {
        new Nap({ taskId: 'a_double', pool: 'five', poolSlots: 2, priorityWeight: 3 });
        new Nap({ taskId: 'b_double', pool: 'five', poolSlots: 2, priorityWeight: 2 });
        new Nap({ taskId: 'c_double', pool: 'five', poolSlots: 2, priorityWeight: 1 });
        new Nap({ taskId: 'd_single', pool: 'five', priorityWeight: 0 });
      });
      await schedule('run', ['a_double', 'b_double', 'c_double', 'd_single']);
      await enqueueScheduled(t.database.db, 1, null);
      // 2 + 2 = 4 of 5: c_double (2) does not fit and is skipped; d_single, lower, still fits.
      expect(await queuedIds('run')).to.deep.equal(['a_double', 'b_double', 'd_single']);
      expect(await occupied('five')).to.equal(5);
      await enqueueScheduled(t.database.db, 1, null);
      expect(await queuedIds('run'), 'a full pool queues nothing more').to.have.length(3);
    });

    it('include_deferred: deferred task instances take slots only when the pool says so', async () => {
      await setPool(t.database.db, { pool: 'two', slots: 2 });
      await prepare(() => {
        for (const id of ['deferred_1', 'deferred_2', 'fresh_1', 'fresh_2']) new Nap({ taskId: id, pool: 'two' });
      });
      await sql`UPDATE task_instance SET state = 'deferred' WHERE task_id LIKE 'deferred_%'`.execute(t.database.db);
      await setPool(t.database.db, { pool: 'two', slots: 2, includeDeferred: true });
      await schedule('run', ['fresh_1', 'fresh_2']);
      await enqueueScheduled(t.database.db, 1, null);
      expect(await queuedIds('run'), 'two deferred fill the pool that counts them').to.deep.equal([]);
      await setPool(t.database.db, { pool: 'two', slots: 2, includeDeferred: false });
      await enqueueScheduled(t.database.db, 1, null);
      expect(await queuedIds('run'), 'a pool that does not count deferred ones').to.deep.equal(['fresh_1', 'fresh_2']);
    });

    it('a task resumed from a deferral is queued before fresh tasks of higher priority when slots are scarce', async () => {
      await setPool(t.database.db, { pool: 'one', slots: 1 });
      await prepare(() => {
        new Nap({ taskId: 'fresh_urgent', pool: 'one', priorityWeight: 100 });
        new Nap({ taskId: 'resumed', pool: 'one', priorityWeight: 1 });
      });
      await schedule('run', ['fresh_urgent']);
      await sleep(5);
      await schedule('run', ['resumed'], ['resumed']); // its trigger fired after the fresh one was scheduled
      await enqueueScheduled(t.database.db, 1, null);
      expect(await queuedIds('run')).to.deep.equal(['resumed']);
    });

    it('a missing pool queues nothing and is reported; a task bigger than its pool starves; -1 is unlimited; other pools go on', async () => {
      await setPool(t.database.db, { pool: 'small', slots: 2 });
      await setPool(t.database.db, { pool: 'endless', slots: -1 });
      await prepare(() => {
        new Nap({ taskId: 'nowhere', pool: 'no_such_pool', priorityWeight: 9 });
        new Nap({ taskId: 'too_big', pool: 'small', poolSlots: 3, priorityWeight: 9 });
        for (let i = 0; i < 20; i++) new Nap({ taskId: `endless_${String(i).padStart(2, '0')}`, pool: 'endless', poolSlots: 50 });
        new Nap({ taskId: 'fits', pool: 'small', poolSlots: 2 });
      });
      const ids = ['nowhere', 'too_big', 'fits', ...Array.from({ length: 20 }, (_, i) => `endless_${String(i).padStart(2, '0')}`)];
      await schedule('run', ids);
      const waits: PoolWait[] = [];
      await sql`UPDATE dag SET max_active_tasks = 100`.execute(t.database.db);
      await enqueueScheduled(t.database.db, 1, null, undefined, (w) => waits.push(w));
      const queued = await queuedIds('run');
      expect(queued).to.include('fits').and.not.include('nowhere').and.not.include('too_big');
      expect(queued.filter((id) => id.startsWith('endless_'))).to.have.length(20);
      expect(waits).to.deep.include({ kind: 'missing', pool: 'no_such_pool' });
      expect(waits).to.deep.include({ kind: 'too-small', pool: 'small', slots: 2, poolSlots: 3 });
    });

    it('max_active_tasks still holds with pools, and a paused DAG’s running run goes on', async () => {
      await prepare(() => {
        for (let i = 0; i < 6; i++) new Nap({ taskId: `t${i}` });
      });
      await sql`UPDATE dag SET max_active_tasks = 4, is_paused = true`.execute(t.database.db);
      await schedule('run', ['t0', 't1', 't2', 't3', 't4', 't5']);
      await enqueueScheduled(t.database.db, 1, 1, ['prepared']);
      expect(await queuedIds('run'), 'a scheduler for this DAG only (dags test)').to.have.length(1);
      await enqueueScheduled(t.database.db, 1, 1, ['another_dag']);
      expect(await queuedIds('run'), 'a scheduler for other DAGs only leaves it').to.have.length(1);
      await enqueueScheduled(t.database.db, 1, null);
      expect(await queuedIds('run'), 'max_active_tasks').to.have.length(4);
      expect(await occupied('default_pool'), 'in default_pool').to.equal(4);
    });
  });
});
