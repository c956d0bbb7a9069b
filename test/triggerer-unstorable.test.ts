import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { SequentialExecutor } from '../src/executors/sequential-executor.ts';
import { runTaskInstance } from '../src/runner/task-runner.ts';
import { Scheduler } from '../src/scheduler/scheduler.ts';
import { BaseOperator, dag, type BaseOperatorOptions, type JsonObject, type JsonValue } from '../src/sdk/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll, track } from './support/daemons.ts';
import { waitForEvent } from './support/events.ts';
import { startNotifier, startTriggerer } from './support/rig.ts';
import { UnstorableTrigger } from './fixtures/triggers/unstorable-trigger.ts';

/*
 * A trigger's error or event holding a NUL or a lone surrogate, which jsonb refuses, through a real
 * triggerer and PostgreSQL: the outcome is written with U+FFFD in their place, once, and the task
 * resumes — failing with a readable error, or completing with the event — instead of the write
 * being retried forever while the task waits in `deferred`.
 */

/** Defers to an UnstorableTrigger; completes with the event as its XCom. */
class DeferToUnstorable extends BaseOperator<JsonValue> {
  readonly #what: 'error' | 'event';

  constructor(options: BaseOperatorOptions & { what: 'error' | 'event' }) {
    super(options);
    this.#what = options.what;
  }

  override execute(): never {
    this.defer({ trigger: new UnstorableTrigger({ what: this.#what }), method: 'executeComplete' });
  }

  executeComplete(_context: unknown, event: JsonValue | undefined, _kwargs: JsonObject): JsonValue {
    return event ?? null;
  }
}

/** The fixture's text as it can be stored: NUL and the lone surrogate replaced by U+FFFD. */
const STORED = UnstorableTrigger.TEXT.replace('\u0000', '\uFFFD').replace('\uD83D', '\uFFFD');

describe('the triggerer, with an outcome PostgreSQL refuses', function () {
  this.timeout(30_000);
  let t: TestDatabase;
  let logsFolder: string;
  let dagNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  beforeEach(async () => {
    logsFolder = await mkdtemp(path.join(os.tmpdir(), 'tsflow-unstorable-'));
  });
  afterEach(async () => {
    await stopAll();
    await rm(logsFolder, { recursive: true, force: true });
  });

  /** Runs a one-task DAG through a scheduler (task logs to files) and the fixture triggerer. */
  async function run(what: 'error' | 'event') {
    const dagId = `unstorable_${++dagNo}`;
    const theDag = dag({ dagId }, () => new DeferToUnstorable({ taskId: 'wait', what, retries: 0 }));
    const bag = DagBag.of([theDag]);
    const executor = new SequentialExecutor({
      logger: silentLogger(),
      runTask: (key, signal, onState) =>
        runTaskInstance(
          { db: t.database.db, logger: silentLogger(), logsFolder, hostname: 'test', pid: process.pid, defaults: { deferrable: false }, onState },
          bag.getDag(key.dagId),
          key,
          { signal },
        ),
    });
    const scheduler = track(new Scheduler({ database: t.database, dagBag: bag, executor, logger: silentLogger(), notifier: await startNotifier(t.database) }));
    await scheduler.start();
    const triggerer = await startTriggerer(t.database);
    const outcome = waitForEvent(triggerer, what === 'error' ? 'trigger:failed' : 'trigger:fired', (e) => e.task?.dagId === dagId);
    const ended = waitForEvent(scheduler, 'run:state', (r) => r.dagId === dagId && r.state !== 'running', 20_000);
    await upsertDags(t.database.db, [{ dagId, fileloc: '' }]);
    await createDagRun(t.database.db, { dagId, runId: 'r1', conf: {}, logicalDate: new Date() });
    const { state } = await ended;
    return { state, outcome: await outcome, dagId };
  }

  async function taskLog(): Promise<string> {
    const files = (await readdir(logsFolder, { recursive: true, withFileTypes: true })).filter((f) => f.isFile());
    return (await Promise.all(files.map((f) => readFile(path.join(f.parentPath, f.name), 'utf8')))).join('\n');
  }

  it('fails the task with a readable error when the trigger error holds a NUL and a lone surrogate', async () => {
    const { state, outcome } = await run('error');
    expect(state).to.equal('failed');
    expect(outcome).to.include({ result: 'applied' });
    expect((outcome as { error: string }).error).to.equal(`Error: ${STORED}`);
    const log = await taskLog();
    expect(log, 'the task log carries the trigger error').to.contain('TaskDeferralError');
    expect(log).to.contain(JSON.stringify(STORED).slice(1, -1));
  });

  it('resumes the task with the event sanitised when the event holds them', async () => {
    const { state, outcome, dagId } = await run('event');
    expect(state).to.equal('success');
    expect(outcome).to.include({ result: 'applied' });
    const xcom = await t.database.db.selectFrom('xcom').select('value').where('dag_id', '=', dagId).where('task_id', '=', 'wait').executeTakeFirstOrThrow();
    expect(xcom.value).to.deep.equal({ reading: STORED, ['key\uFFFD']: 1 });
  });
});
