import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import { clearTaskInstances } from '../src/db/clear.ts';
import type { Db } from '../src/db/database.ts';
import type { TaskInstanceKey } from '../src/db/schema.ts';
import { OutcomeNotRecordedError, runTaskInstance, type TaskRunnerDeps } from '../src/runner/task-runner.ts';
import { BaseOperator } from '../src/sdk/base-operator.ts';
import { dag, type Dag } from '../src/sdk/dag.ts';
import { FailTask } from '../src/sdk/errors.ts';
import type { JsonObject } from '../src/sdk/json.ts';
import { TimeDeltaTrigger } from '../triggers/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';
import { faultyDb, type FaultRule } from './support/faulty-db.ts';
import { createRun, queue, taskInstance } from './support/rig.ts';
import { storedReturnValue } from './support/xcom.ts';

/*
 * A try's last write across a dropped connection, on a real PostgreSQL: the statements themselves run
 * for real; only the connection's failure is staged, either before a statement reaches the server or
 * after it committed (the reply lost).
 */

/** finishTry: the one UPDATE of task_instance whose new state is a parameter. */
const FINISH_TRY = /UPDATE task_instance SET\s+state = \$\d/;
/** startTry. */
const START_TRY = /UPDATE task_instance SET\s+state = 'running'/;
/** The defer write's trigger insert. */
const DEFER_TRY = /INSERT INTO trigger/i;
/** heartbeatTry. */
const HEARTBEAT = /set "last_heartbeat_at"/i;

/** A promise with its resolve, for a task that waits on the test. */
function latch(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Returns a value, or waits for `gate` first when one is set. */
class Answer extends BaseOperator<JsonObject> {
  gate: Promise<void> | undefined;
  override async execute(): Promise<JsonObject> {
    await this.gate;
    return { answer: 42 };
  }
}

class GiveUp extends BaseOperator {
  override execute(): never {
    throw new FailTask('no point in retrying');
  }
}

class WaitAnHour extends BaseOperator {
  override execute(): never {
    this.defer({ trigger: new TimeDeltaTrigger({ delta: { hours: 1 } }), kwargs: { note: 'later' } });
  }
}

describe('a try whose last write meets a dropped connection', () => {
  let t: TestDatabase;
  let flow: Dag;
  let runNo = 0;

  before(async () => {
    t = await createTestDatabase();
    flow = dag({ dagId: 'final_write' }, () => {
      new Answer({ taskId: 'answer' });
      new GiveUp({ taskId: 'give_up', retries: 3 });
      new WaitAnHour({ taskId: 'wait' });
    });
  });
  after(() => t.drop());
  afterEach(() => {
    (flow.getTask('answer') as Answer).gate = undefined;
  });

  async function queued(taskId: string): Promise<TaskInstanceKey> {
    const runId = `run_${++runNo}`;
    await createRun(t.database, flow, runId);
    const key = { dagId: 'final_write', runId, taskId };
    await queue(t.database, key);
    return key;
  }

  function deps(db: Db, extra: Partial<TaskRunnerDeps> = {}): TaskRunnerDeps {
    return { db, logger: silentLogger(), hostname: 'test', pid: process.pid, defaults: { deferrable: false }, ...extra };
  }

  /** A rule that fails the statements matching `pattern` while `failing()` says so, counting the faults. */
  function outage(pattern: RegExp, timing: 'before' | 'after', failing: (faultsSoFar: number) => boolean) {
    let faults = 0;
    const first = latch();
    const rule: FaultRule = (sql) => {
      if (!pattern.test(sql) || !failing(faults)) return undefined;
      faults++;
      first.open();
      return timing;
    };
    return { rule, firstFault: first.promise, count: () => faults };
  }

  it('reports success when the success committed but its reply was lost, with its XCom stored once', async () => {
    const key = await queued('answer');
    const lost = outage(FINISH_TRY, 'after', (n) => n === 0);
    const result = await runTaskInstance(deps(faultyDb(t.database.pool, lost.rule)), flow, key);
    expect(lost.count()).to.equal(1);
    expect(result).to.deep.equal({ state: 'success', tryNumber: 1 });
    const ti = await taskInstance(t.database, key);
    expect([ti.state, ti.try_number]).to.deep.equal(['success', 1]);
    expect(await storedReturnValue(t.database, key)).to.deep.equal({ answer: 42 });
  });

  it('lands a success whose connection, and every other of its database, was terminated as the write began', async () => {
    const key = await queued('answer');
    let terminated = 0;
    const terminateAll = async (sql: string): Promise<void> => {
      if (terminated > 0 || !FINISH_TRY.test(sql)) return;
      // From a connection of its own: every other backend of the database goes, the writer's included.
      const { rows } = await t.database.pool.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
      );
      terminated = rows.length;
    };
    const result = await runTaskInstance(deps(faultyDb(t.database.pool, () => undefined, terminateAll)), flow, key);
    expect(terminated).to.be.greaterThan(0);
    expect(result).to.deep.equal({ state: 'success', tryNumber: 1 });
    expect((await taskInstance(t.database, key)).state).to.equal('success');
    expect(await storedReturnValue(t.database, key)).to.deep.equal({ answer: 42 });
  });

  it('retries a success that never reached the server until it lands', async () => {
    const key = await queued('answer');
    const down = outage(FINISH_TRY, 'before', (n) => n < 3);
    const result = await runTaskInstance(deps(faultyDb(t.database.pool, down.rule)), flow, key);
    expect(down.count()).to.equal(3);
    expect(result.state).to.equal('success');
    expect((await taskInstance(t.database, key)).state).to.equal('success');
    expect(await storedReturnValue(t.database, key)).to.deep.equal({ answer: 42 });
  });

  it('reports a failure that committed before its reply was lost as that failure', async () => {
    const key = await queued('give_up');
    const lost = outage(FINISH_TRY, 'after', (n) => n === 0);
    const result = await runTaskInstance(deps(faultyDb(t.database.pool, lost.rule)), flow, key);
    expect(result.state).to.equal('failed');
    expect(result.error).to.equal('FailTask: no point in retrying');
  });

  it('reports a defer that committed before its reply was lost as deferred, with one trigger', async () => {
    const key = await queued('wait');
    const lost = outage(DEFER_TRY, 'after', (n) => n === 0);
    const result = await runTaskInstance(deps(faultyDb(t.database.pool, lost.rule)), flow, key);
    expect(lost.count()).to.equal(1);
    expect(result).to.deep.equal({ state: 'deferred', tryNumber: 1 });
    const ti = await taskInstance(t.database, key);
    expect([ti.state, ti.next_method]).to.deep.equal(['deferred', 'executeComplete']);
    const triggers = await t.database.db.selectFrom('trigger').select('id').where('id', '=', ti.trigger_id!).execute();
    expect(triggers).to.have.length(1);
  });

  it('discards the outcome of a try cleared while its final write is retried, and writes nothing', async () => {
    const key = await queued('answer');
    let cleared = false;
    const down = outage(FINISH_TRY, 'before', () => !cleared);
    const running = runTaskInstance(deps(faultyDb(t.database.pool, down.rule)), flow, key);
    await down.firstFault;
    await clearTaskInstances(t.database.db, { dagId: key.dagId, runId: key.runId, taskIds: [key.taskId], retries: new Map() });
    cleared = true;
    const result = await running;
    expect(result.state).to.equal('discarded');
    expect((await taskInstance(t.database, key)).state).to.equal(null);
    expect(await storedReturnValue(t.database, key)).to.equal(undefined);
  });

  it('tells a zombie sweep that failed the try meanwhile from its own failure landing', async () => {
    const key = await queued('give_up');
    let swept = false;
    const down = outage(FINISH_TRY, 'before', () => !swept);
    const running = runTaskInstance(deps(faultyDb(t.database.pool, down.rule)), flow, key);
    await down.firstFault;
    // What failZombies writes: the same state this try's failure would, with its own reason.
    await t.database.db
      .updateTable('task_instance')
      .set({ state: 'failed', error: 'zombie: the worker running try 1 stopped heartbeating', hostname: null, pid: null })
      .where('run_id', '=', key.runId)
      .where('task_id', '=', key.taskId)
      .execute();
    swept = true;
    expect((await running).state).to.equal('discarded');
    expect((await taskInstance(t.database, key)).error).to.match(/^zombie:/);
  });

  it('keeps the try heartbeating while its final write is retried', async () => {
    const key = await queued('answer');
    let down = true;
    const failing = outage(FINISH_TRY, 'before', () => down);
    const running = runTaskInstance(deps(faultyDb(t.database.pool, failing.rule), { heartbeatIntervalMs: 50 }), flow, key);
    await failing.firstFault;
    const before = (await taskInstance(t.database, key)).last_heartbeat_at!;
    await eventually(async () => (await taskInstance(t.database, key)).last_heartbeat_at! > before, 'a heartbeat during the retries');
    down = false;
    expect((await running).state).to.equal('success');
  });

  it('does not stop the task for heartbeats that fail on a dropped connection', async () => {
    const key = await queued('answer');
    const task = flow.getTask('answer') as Answer;
    const beats = outage(HEARTBEAT, 'before', (n) => n < 3);
    // The task outlives three failed beats, then returns.
    task.gate = eventually(async () => beats.count() >= 3, 'three failed heartbeats').then(() => undefined);
    const result = await runTaskInstance(deps(faultyDb(t.database.pool, beats.rule), { heartbeatIntervalMs: 20 }), flow, key);
    expect(beats.count()).to.equal(3);
    expect(result).to.deep.equal({ state: 'success', tryNumber: 1 });
  });

  it('stops retrying when the worker is told to stop, and leaves the try running for the lost-try handling', async () => {
    const key = await queued('answer');
    const down = outage(FINISH_TRY, 'before', () => true);
    const stop = new AbortController();
    const running = runTaskInstance(deps(faultyDb(t.database.pool, down.rule)), flow, key, { signal: stop.signal });
    await down.firstFault;
    stop.abort(new Error('the worker was stopped: SIGTERM'));
    const error = await running.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(OutcomeNotRecordedError);
    expect((error as Error).message).to.contain('stays running until the scheduler fails it as lost');
    const ti = await taskInstance(t.database, key);
    expect([ti.state, ti.try_number]).to.deep.equal(['running', 1]);
  });

  it('adopts a try whose start committed but whose reply was lost, without counting another try', async () => {
    const key = await queued('answer');
    const lost = outage(START_TRY, 'after', (n) => n === 0);
    const result = await runTaskInstance(deps(faultyDb(t.database.pool, lost.rule)), flow, key);
    expect(lost.count()).to.equal(1);
    expect(result).to.deep.equal({ state: 'success', tryNumber: 1 });
  });
});
