import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { runTaskInstance } from '../src/runner/task-runner.ts';
import { BaseOperator } from '../src/sdk/base-operator.ts';
import { dag, type Dag } from '../src/sdk/dag.ts';
import type { JsonObject } from '../src/sdk/json.ts';
import { BIN } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';
import { createRun, FIXTURES, queue, taskInstance } from './support/rig.ts';
import { testServerControl, type TestServerControl } from './support/server-control.ts';
import { storedReturnValue } from './support/xcom.ts';

/** Enters `execute`, says so, and returns once the test lets it. */
class Held extends BaseOperator<JsonObject> {
  entered: () => void = () => undefined;
  release: Promise<void> = Promise.resolve();
  override async execute(): Promise<JsonObject> {
    this.entered();
    await this.release;
    return { survived: 'a restart' };
  }
}

describe("a worker's final write across a PostgreSQL restart", () => {
  // Read once the run's server is up (the global setup runs after this file is loaded).
  let server: TestServerControl | undefined;
  let t: TestDatabase;
  let flow: Dag;

  before(async () => {
    server = testServerControl();
    if (!server) return;
    t = await createTestDatabase();
    flow = dag({ dagId: 'restart_write' }, () => {
      new Held({ taskId: 'held' });
    });
  });
  after(async () => {
    if (server) await t.drop();
  });
  beforeEach(function () {
    if (server) return;
    this.currentTest!.title += ' (skipped: TSFLOW_TEST_DATABASE_URL names a shared server, which the tests never restart)';
    this.skip();
  });

  it('lands the success and its XCom once the server is back, with no crash meanwhile', async () => {
    const control = server!;
    await createRun(t.database, flow, 'run_1');
    const key = { dagId: 'restart_write', runId: 'run_1', taskId: 'held' };
    await queue(t.database, key);
    const task = flow.getTask('held') as Held;
    const entered = new Promise<void>((resolve) => (task.entered = resolve));
    let release: () => void = () => undefined;
    task.release = new Promise<void>((resolve) => (release = resolve));
    const lines: { msg?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg?: string }) });

    // The task runs in this process: a connection error nobody listened to would fail this test as an
    // uncaught exception.
    const running = runTaskInstance({ db: t.database.db, logger, hostname: 'test', pid: process.pid, defaults: { deferrable: false }, heartbeatIntervalMs: 200 }, flow, key);
    await entered;
    await control.stop();
    try {
      release();
      await eventually(async () => lines.some((l) => l.msg?.startsWith("could not record the try's outcome")), 'the final write to fail and be retried', 15_000);
    } finally {
      await control.start();
    }
    const result = await running;
    expect(result).to.deep.equal({ state: 'success', tryNumber: 1 });
    const ti = await taskInstance(t.database, key);
    expect([ti.state, ti.try_number]).to.deep.equal(['success', 1]);
    expect(await storedReturnValue(t.database, key)).to.deep.equal({ survived: 'a restart' });
  });

  it('lands it from a `tsflow tasks run` process whose server was stopped under it, which exits 0', async () => {
    const control = server!;
    const folder = path.join(FIXTURES, 'restart-dags');
    const held = (await DagBag.load(folder)).getDag('restart_held');
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'tsflow-restart-'));
    try {
      const enteredFile = path.join(scratch, 'entered');
      const releaseFile = path.join(scratch, 'release');
      await createRun(t.database, held, 'run_cli', { enteredFile, releaseFile });
      const key = { dagId: 'restart_held', runId: 'run_cli', taskId: 'held' };
      await queue(t.database, key);
      const child = spawn(process.execPath, [BIN, 'tasks', 'run', 'restart_held', 'held', 'run_cli', '--dags-folder', folder], {
        env: { ...process.env, TSFLOW_HOME: process.env['TSFLOW_TEST_HOME'], TSFLOW_DATABASE_URL: t.url, TSFLOW_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      try {
        await eventually(async () => existsSync(enteredFile), 'the task to start', 20_000);
        await control.stop();
        try {
          await writeFile(releaseFile, '');
          await eventually(async () => stderr.includes("could not record the try's outcome"), 'the final write to fail and be retried', 15_000);
        } finally {
          await control.start();
        }
        expect(await exited, stderr).to.equal(0);
      } finally {
        child.kill('SIGKILL');
      }
      const ti = await taskInstance(t.database, key);
      expect([ti.state, ti.try_number]).to.deep.equal(['success', 1]);
      expect(await storedReturnValue(t.database, key)).to.deep.equal({ pid: child.pid });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
