import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import { clearTaskInstances } from '../src/db/clear.ts';
import type { TaskInstanceKey } from '../src/db/schema.ts';
import { runTaskInstance } from '../src/runner/task-runner.ts';
import type { TaskRunResult } from '../src/runner/try-run.ts';
import { BashOperator, dag, type BashOperatorOptions, type Dag } from '../src/sdk/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { createRun, queue, taskInstance } from './support/rig.ts';
import { storedReturnValue } from './support/xcom.ts';

/** True while a process with this pid exists (and is not a zombie we cannot see past). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('BashOperator (real bash, real PostgreSQL)', function () {
  this.timeout(60_000);
  let t: TestDatabase;
  let dir: string;
  let dagNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bash-test-'));
  });
  afterEach(async () => {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  });

  /** A one-task DAG with a run whose task instance is queued, ready for a worker. */
  async function prepare(options: Omit<BashOperatorOptions<unknown>, 'taskId'>): Promise<{ d: Dag; key: TaskInstanceKey }> {
    const d = dag({ dagId: `bash_${++dagNo}` }, () => {
      new BashOperator<unknown>({ taskId: 'sh', ...options });
    });
    const runId = await createRun(t.database, d, 'r1');
    const key = { dagId: d.dagId, runId, taskId: 'sh' };
    await queue(t.database, key);
    return { d, key };
  }

  function run(d: Dag, key: TaskInstanceKey, heartbeatIntervalMs?: number): Promise<TaskRunResult> {
    return runTaskInstance(
      { db: t.database.db, logger: silentLogger(), logsFolder: path.join(dir, 'logs'), hostname: 'test', pid: process.pid, defaults: { deferrable: false }, heartbeatIntervalMs },
      d,
      key,
    );
  }

  /** The messages of the try's log file. */
  async function logMessages(key: TaskInstanceKey): Promise<string[]> {
    const folder = path.join(dir, 'logs', key.dagId, key.runId, key.taskId);
    const [file] = await readdir(folder);
    const text = await readFile(path.join(folder, file as string), 'utf8');
    return text.trim().split('\n').map((line) => String((JSON.parse(line) as { msg?: unknown }).msg));
  }

  it('logs stdout and stderr line by line and pushes the last stdout line; env and cwd apply', async () => {
    const { d, key } = await prepare({
      bashCommand: 'echo "hello $GREETING from $(pwd) in $TSFLOW_CTX_TASK_ID"; echo "to stderr" >&2; echo "last line"',
      env: { GREETING: 'world' },
      appendEnv: true,
      cwd: dir,
    });
    expect((await run(d, key)).state).to.equal('success');
    const messages = await logMessages(key);
    expect(messages).to.include(`hello world from ${dir} in sh`);
    expect(messages).to.include('to stderr');
    expect(messages).to.include('last line');
    expect(messages).to.include('Command exited with return code 0');
    expect(await storedReturnValue(t.database, key)).to.equal('last line');
  });

  it('env replaces the environment unless appendEnv; outputProcessor shapes the XCom', async () => {
    process.env['TSFLOW_BASH_TEST_MARKER'] = 'inherited';
    try {
      const { d, key } = await prepare({
        bashCommand: 'echo "{\\"marker\\": \\"${TSFLOW_BASH_TEST_MARKER:-unset}\\", \\"mine\\": \\"$MINE\\"}"',
        env: { MINE: 'yes' },
        outputProcessor: (line) => JSON.parse(line) as unknown,
      });
      expect((await run(d, key)).state).to.equal('success');
      expect(await storedReturnValue(t.database, key)).to.deep.equal({ marker: 'unset', mine: 'yes' });
    } finally {
      delete process.env['TSFLOW_BASH_TEST_MARKER'];
    }
  });

  it('exit code 99 ends the task skipped; another non-zero code fails it, naming the code', async () => {
    const skipped = await prepare({ bashCommand: 'echo before; exit 99' });
    expect((await run(skipped.d, skipped.key)).state).to.equal('skipped');
    expect(await logMessages(skipped.key)).to.include('before');

    const failed = await prepare({ bashCommand: 'echo oops >&2; exit 3' });
    const result = await run(failed.d, failed.key);
    expect(result.state).to.equal('failed');
    expect(result.error).to.contain('non-zero exit code 3');
    expect((await taskInstance(t.database, failed.key)).state).to.equal('failed');

    const custom = await prepare({ bashCommand: 'exit 99', skipOnExitCode: null });
    expect((await run(custom.d, custom.key)).state, 'skipOnExitCode: null never skips').to.equal('failed');
  });

  it('a cwd that does not exist fails the task, naming it', async () => {
    const missing = path.join(dir, 'no-such-dir');
    const { d, key } = await prepare({ bashCommand: 'echo hi', cwd: missing });
    const result = await run(d, key);
    expect(result.state).to.equal('failed');
    expect(result.error).to.contain(`cwd '${missing}' does not exist`);
  });

  it('executionTimeout kills the whole process group, background children included', async () => {
    const pidFile = path.join(dir, 'child.pid');
    const { d, key } = await prepare({
      bashCommand: `sleep 300 & echo $! > ${pidFile}; echo started; wait`,
      executionTimeout: 1,
      killGracePeriod: 2,
    });
    const result = await run(d, key);
    expect(result.state).to.equal('failed');
    const childPid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(childPid).to.be.greaterThan(0);
    await eventually(async () => !alive(childPid), `the background sleep (pid ${childPid}) to be killed`, 15_000);
    expect(await logMessages(key)).to.include('started');
  });

  it('clearing the running task kills its process group', async () => {
    const pidFile = path.join(dir, 'child.pid');
    const { d, key } = await prepare({ bashCommand: `sleep 300 & echo $! > ${pidFile}; wait` });
    const running = run(d, key, 200);
    const childPid = await eventually(async () => {
      const text = await readFile(pidFile, 'utf8').catch(() => '');
      return text.trim() === '' ? undefined : Number(text.trim());
    }, 'the command to start its child', 20_000);
    expect(alive(childPid)).to.equal(true);
    await clearTaskInstances(t.database.db, { dagId: key.dagId, runId: key.runId, taskIds: ['sh'], retries: new Map([['sh', 0]]) });
    expect((await running).state).to.equal('discarded');
    await eventually(async () => !alive(childPid), `the background sleep (pid ${childPid}) to be killed`, 15_000);
  });
});
