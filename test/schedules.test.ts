import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { DateTime } from 'luxon';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { serializeDag } from '../src/dag-bag/serialized-dag.ts';
import { Channels, notify } from '../src/db/protocol.ts';
import { recordDags } from '../src/db/serialized-dags.ts';
import type { DataInterval, RunInfo, SerializedTimetable, TimeRestriction, Timetable } from '../src/scheduling/index.ts';
import { BaseOperator, dag, TimeDeltaSensor, type Dag, type TaskContext } from '../src/sdk/index.ts';
import { sleep } from '../src/common/sleep.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { InProcessExecutor } from './support/in-process-executor.ts';
import { startScheduler, startTriggerer } from './support/rig.ts';

/** Sleeps `ms` (from conf, else its option) and records how many of its DAG's tasks were active meanwhile. */
class Nap extends BaseOperator {
  readonly ms: number;
  constructor(options: { taskId: string; ms?: number }) {
    super(options);
    this.ms = options.ms ?? 0;
  }
  override async execute(context: TaskContext): Promise<void> {
    await sleep(this.ms, context.signal);
  }
}

interface RunRow {
  run_id: string;
  run_type: string;
  state: string;
  logical_date: Date;
  data_interval_start: Date | null;
  data_interval_end: Date | null;
}

async function runsOf(t: TestDatabase, dagId: string): Promise<RunRow[]> {
  const { rows } = await sql<RunRow>`
    SELECT run_id, run_type, state, logical_date, data_interval_start, data_interval_end FROM dag_run
    WHERE dag_id = ${dagId} ORDER BY logical_date`.execute(t.database.db);
  return rows;
}

/** The start of the current second (UTC), minus `seconds`. */
function secondsAgo(seconds: number): DateTime {
  return DateTime.utc().startOf('second').minus({ seconds });
}

/** A user's timetable: runs every `seconds`, aligned to the epoch, each covering the period before it. */
class EveryNSeconds implements Timetable {
  readonly summary: string;
  readonly periodic = true;
  readonly canBeScheduled = true;
  readonly #ms: number;
  constructor(seconds: number) {
    this.#ms = seconds * 1000;
    this.summary = `every ${seconds} s (custom)`;
  }
  nextRun(last: DataInterval | undefined, restriction: TimeRestriction, now: DateTime): RunInfo | undefined {
    const floor = (ms: number): number => Math.floor(ms / this.#ms) * this.#ms;
    const start = last ? last.end.toMillis() : floor(Math.max(restriction.earliest?.toMillis() ?? 0, now.toMillis() - this.#ms));
    const at = (ms: number): DateTime => DateTime.fromMillis(ms, { zone: 'utc' });
    return { logicalDate: at(start), dataInterval: { start: at(start), end: at(start + this.#ms) }, runAfter: at(start + this.#ms) };
  }
  inferManualInterval(runAfter: DateTime): DataInterval {
    return { start: runAfter, end: runAfter };
  }
  serialize(): SerializedTimetable {
    return { kind: 'custom', name: 'EveryNSeconds', data: { ms: this.#ms } };
  }
}

describe('schedules: the scheduler creates runs on time, once, within limits', () => {
  let t: TestDatabase;

  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(async () => {
    await stopAll();
    await t.drop();
  });

  async function schedulers(dags: readonly Dag[], count: number, parallelism = 8) {
    const bag = DagBag.of(dags);
    const pools = [t.database, ...Array.from({ length: count - 1 }, () => t.open(5))];
    return Promise.all(pools.map((db) => startScheduler(db, bag, { pollIntervalMs: 1000 }, new InProcessExecutor(db, bag, parallelism))));
  }

  it('two schedulers create each scheduled run exactly once, on time, over many intervals, with Airflow run ids and intervals', async function () {
    this.timeout(30_000);
    const everySecond = dag({ dagId: 'every_second', schedule: '* * * * * *', startDate: secondsAgo(1), maxActiveRuns: 1000 }, () => {
      new Nap({ taskId: 'nap' });
    });
    const started = await schedulers([everySecond], 2);
    const lateness: number[] = [];
    const createdBy = [0, 0];
    started.forEach(({ scheduler }, i) =>
      scheduler.on('run:created', ({ latenessMs }) => {
        lateness.push(latenessMs);
        createdBy[i] = (createdBy[i] ?? 0) + 1;
      }),
    );
    await sleep(6000);
    await stopAll();

    const runs = await runsOf(t, 'every_second');
    expect(runs.length, 'about one run per second').to.be.within(5, 9);
    const seconds = runs.map((r) => r.logical_date.getTime());
    expect(new Set(seconds).size, 'no logical date twice').to.equal(runs.length);
    for (let i = 1; i < seconds.length; i++) expect(seconds[i]! - seconds[i - 1]!, 'no interval skipped').to.equal(1000);
    for (const run of runs) {
      expect(run.run_type).to.equal('scheduled');
      expect(run.run_id).to.equal(`scheduled__${DateTime.fromJSDate(run.logical_date).toUTC().toFormat("yyyy-MM-dd'T'HH:mm:ss")}+00:00`);
      expect(run.data_interval_start?.getTime()).to.equal(run.logical_date.getTime());
      expect(run.data_interval_end!.getTime() - run.data_interval_start!.getTime(), 'a one-second interval').to.equal(1000);
    }
    // The listeners attach after start, so the first pass's run may be created before they listen.
    expect(lateness.length, 'every creation reported once').to.be.within(runs.length - 1, runs.length);
    expect(createdBy[0]! + createdBy[1]!).to.equal(lateness.length);
  });

  it('two schedulers whose connections are terminated again and again still create each run once, with no interval missed', async function () {
    this.timeout(40_000);
    const everySecond = dag({ dagId: 'under_fire', schedule: '* * * * * *', startDate: secondsAgo(1), catchup: true, maxActiveRuns: 1000 }, () => {
      new Nap({ taskId: 'nap' });
    });
    await schedulers([everySecond], 2);
    const admin = new pg.Client({ connectionString: t.url });
    await admin.connect();
    let terminated = 0;
    try {
      const deadline = Date.now() + 6000;
      while (Date.now() < deadline) {
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        );
        terminated += rows.length;
        await sleep(150); // the pace of the terminations, not a wait for a result
      }
    } finally {
      await admin.end();
    }
    expect(terminated, 'connections terminated').to.be.greaterThan(20);
    // After the storm, the schedulers recover and catch up every second that passed.
    const until = DateTime.utc().startOf('second').minus({ seconds: 1 }).toMillis();
    await eventually(async () => {
      const runs = await runsOf(t, 'under_fire').catch(() => []);
      return runs.some((r) => r.logical_date.getTime() >= until);
    }, 'the runs of the storm to be created', 15_000);
    const runs = (await runsOf(t, 'under_fire')).filter((r) => r.logical_date.getTime() <= until);
    const seconds = runs.map((r) => r.logical_date.getTime());
    expect(new Set(seconds).size, 'no run twice').to.equal(seconds.length);
    for (let i = 1; i < seconds.length; i++) expect(seconds[i]! - seconds[i - 1]!, 'no interval missed').to.equal(1000);
    expect(seconds.length).to.be.at.least(6);
  });

  it('catchup: true creates every missed interval after downtime; catchup: false only the latest', async function () {
    this.timeout(30_000);
    const start = secondsAgo(30);
    const options = { schedule: '*/5 * * * * *', startDate: start, maxActiveRuns: 100 };
    const withCatchup = dag({ dagId: 'catching_up', catchup: true, ...options }, () => new Nap({ taskId: 'nap' }));
    const without = dag({ dagId: 'not_catching_up', catchup: false, ...options }, () => new Nap({ taskId: 'nap' }));
    await schedulers([withCatchup, without], 1);
    // Down for 30 s since startDate: every 5-second interval that ended since then (5 or 6 of them).
    await eventually(async () => (await runsOf(t, 'catching_up')).length >= 5, 'the missed intervals', 5000);
    const caught = await runsOf(t, 'catching_up');
    expect(caught[0]!.logical_date.getTime(), 'catchup starts at startDate').to.equal(start.plus({ seconds: (5 - (start.second % 5)) % 5 }).toMillis());
    // catchup: false creates only the latest interval, none of the missed ones — and, on a slow
    // machine, the next one if a 5 s boundary passed since.
    const latest = await runsOf(t, 'not_catching_up');
    expect(latest.length, 'catchup: false creates only the latest interval').to.be.within(1, 2);
    expect(latest[0]!.logical_date.getTime(), 'its first run is the latest interval, not a missed one').to.be.at.least(caught.at(-2)!.logical_date.getTime());

    // A scheduler down for a while catches up on restart (catchup: true) or skips to the latest.
    await stopAll();
    const before = { with: (await runsOf(t, 'catching_up')).length, without: (await runsOf(t, 'not_catching_up')).length };
    await sleep(11_000);
    await schedulers([withCatchup, without], 1);
    await eventually(async () => (await runsOf(t, 'catching_up')).length >= before.with + 2, 'the intervals missed while down', 5000);
    await sleep(300);
    const afterWith = await runsOf(t, 'catching_up');
    const afterWithout = await runsOf(t, 'not_catching_up');
    const gaps = (runs: RunRow[]): number[] => runs.slice(1).map((r, i) => r.logical_date.getTime() - runs[i]!.logical_date.getTime());
    expect(new Set(gaps(afterWith)), 'catchup: true left no interval out').to.deep.equal(new Set([5000]));
    // catchup: false jumped over the downtime to the latest interval (11 s down: at least one skipped).
    const [jump, ...rest] = gaps(afterWithout).slice(before.without - 1);
    expect(jump, 'catchup: false skipped the missed intervals').to.be.at.least(10_000);
    expect(rest.every((g) => g === 5000), 'and went on at the normal pace').to.equal(true);
  });

  it('maxActiveRuns and maxActiveTasks hold across two schedulers', async function () {
    this.timeout(40_000);
    const limited = dag({ dagId: 'limited', schedule: '* * * * * *', startDate: secondsAgo(8), catchup: true, maxActiveRuns: 2, maxActiveTasks: 3 }, () => {
      for (let i = 0; i < 4; i++) new Nap({ taskId: `nap_${i}`, ms: 150 });
    });
    await schedulers([limited], 2, 8);
    let maxRunning = 0;
    let maxActiveTasks = 0;
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      const { rows } = await sql<{ running: number; tasks: number }>`
        SELECT (SELECT count(*) FROM dag_run WHERE dag_id = 'limited' AND state = 'running')::int AS running,
               (SELECT count(*) FROM task_instance WHERE dag_id = 'limited' AND state IN ('queued', 'running'))::int AS tasks`.execute(t.database.db);
      maxRunning = Math.max(maxRunning, rows[0]!.running);
      maxActiveTasks = Math.max(maxActiveTasks, rows[0]!.tasks);
      await sleep(15);
    }
    const finished = (await runsOf(t, 'limited')).filter((r) => r.state === 'success').length;
    expect(finished, 'runs kept finishing').to.be.at.least(4);
    expect(maxRunning, 'running runs').to.be.within(1, 2);
    expect(maxActiveTasks, 'queued or running task instances').to.be.within(1, 3);
  });

  it('a paused DAG gets no new runs; its running run goes on; unpaused it starts again', async function () {
    this.timeout(40_000);
    // Two tasks in a row: the second is queued after the pause, so the running run really goes on.
    const paused = dag({ dagId: 'pausable', schedule: '* * * * * *', startDate: secondsAgo(1), maxActiveRuns: 100 }, () => {
      new Nap({ taskId: 'nap', ms: 1000 }).setDownstream(new Nap({ taskId: 'then', ms: 200 }));
    });
    await schedulers([paused], 1);
    await eventually(async () => (await runsOf(t, 'pausable')).length >= 1, 'a first run', 3000);
    await eventually(
      async () => (await t.database.db.selectFrom('task_instance').select('state').where('dag_id', '=', 'pausable').execute()).some((r) => r.state === 'running'),
      'the first run\'s task running',
      3000,
    );
    await t.database.db.transaction().execute(async (trx) => {
      await trx.updateTable('dag').set({ is_paused: true }).where('dag_id', '=', 'pausable').execute();
      await notify(trx, Channels.dag, 'paused');
    });
    const pausedWith = await runsOf(t, 'pausable');
    const atPause = pausedWith.length;
    // The runs running at the pause finish (however slow the machine), and none is added meanwhile.
    // A run still queued at the pause stays queued (Airflow's: a paused DAG starts no run).
    const running = new Set(pausedWith.filter((r) => r.state === 'running').map((r) => r.run_id));
    expect(running.size, 'a run was running at the pause').to.be.at.least(1);
    await eventually(
      async () => (await runsOf(t, 'pausable')).filter((r) => running.has(r.run_id)).every((r) => r.state === 'success'),
      'the running runs finished',
      15_000,
    );
    await sleep(2000);
    const later = await runsOf(t, 'pausable');
    expect(later.length, 'no run created while paused').to.equal(atPause);
    await t.database.db.transaction().execute(async (trx) => {
      await trx.updateTable('dag').set({ is_paused: false }).where('dag_id', '=', 'pausable').execute();
      await notify(trx, Channels.dag, 'paused');
    });
    await eventually(async () => (await runsOf(t, 'pausable')).length > atPause, 'a run after unpausing', 3000);
  });

  it('schedules a DAG by a custom Timetable, evaluated by its own code', async function () {
    this.timeout(20_000);
    const custom = dag({ dagId: 'custom_timetable', schedule: new EveryNSeconds(2), startDate: secondsAgo(60) }, () => new Nap({ taskId: 'nap' }));
    await schedulers([custom], 1);
    await eventually(async () => (await runsOf(t, 'custom_timetable')).length >= 2, 'two runs of the custom timetable', 6000);
    const runs = await runsOf(t, 'custom_timetable');
    for (const run of runs) {
      expect(run.logical_date.getTime() % 2000, 'aligned to 2 s').to.equal(0);
      expect(run.data_interval_end!.getTime() - run.data_interval_start!.getTime()).to.equal(2000);
    }
    expect(runs[1]!.logical_date.getTime() - runs[0]!.logical_date.getTime()).to.equal(2000);
  });

  it("takes a DAG's new schedule without a restart", async function () {
    this.timeout(20_000);
    const manual = dag({ dagId: 'rescheduled', schedule: null }, () => new Nap({ taskId: 'nap' }));
    await schedulers([manual], 1);
    await sleep(1500);
    expect(await runsOf(t, 'rescheduled')).to.have.length(0);
    // What a DAG processor writes when the file changes.
    const everySecond = dag({ dagId: 'rescheduled', schedule: '* * * * * *', startDate: secondsAgo(1) }, () => new Nap({ taskId: 'nap' }));
    await recordDags(t.database.db, [serializeDag(everySecond, '')]);
    await eventually(async () => (await runsOf(t, 'rescheduled')).length >= 2, 'runs on the new schedule', 4000);
  });

  it('dagrunTimeout fails a run, skips its unfinished tasks and cancels their triggers', async function () {
    this.timeout(20_000);
    const slow = dag({ dagId: 'timing_out', dagrunTimeout: 1, schedule: '@once', startDate: secondsAgo(0) }, () => {
      new TimeDeltaSensor({ taskId: 'wait', delta: { minutes: 10 }, deferrable: true });
    });
    const triggerCount = async (): Promise<number> => {
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM trigger`.execute(t.database.db);
      return rows[0]!.n;
    };
    const { scheduler } = (await schedulers([slow], 1))[0]!;
    await startTriggerer(t.database);
    const failed = new Promise<void>((resolve) => scheduler.on('run:state', (run) => run.state === 'failed' && resolve()));
    await eventually(async () => (await triggerCount()) === 1, 'the sensor to defer', 5000);
    await failed;
    const [run] = await runsOf(t, 'timing_out');
    expect(run!.state).to.equal('failed');
    const ti = await t.database.db.selectFrom('task_instance').selectAll().where('dag_id', '=', 'timing_out').executeTakeFirstOrThrow();
    expect(ti).to.deep.include({ state: 'skipped', trigger_id: null, error: 'the run exceeded its dagrunTimeout' });
    await eventually(async () => (await triggerCount()) === 0, 'the trigger to be deleted', 3000);
  });
});
