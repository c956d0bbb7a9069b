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
import { dag, HttpSensor, InvalidTriggerKwargsError } from '../src/sdk/index.ts';
import { TriggerRegistry } from '../src/triggerer/trigger-registry.ts';
import { Triggerer } from '../src/triggerer/triggerer.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll, track } from './support/daemons.ts';
import { waitForEvent } from './support/events.ts';
import { ScriptedServer } from './support/http-server.ts';
import { startNotifier } from './support/rig.ts';
import { captureLogs } from './support/unit.ts';

/*
 * An HttpSensor whose URL carries a token in its query string, failing end to end: the secret must
 * not reach the failure stored for the task, the triggerer's log, the worker's log or the task log —
 * even when the server quotes the request back in its error body.
 */

const SECRET = 'SECRET-tok3n-4711';

describe('HTTP sensor secrets, end to end', function () {
  this.timeout(30_000);
  let t: TestDatabase;
  let server: ScriptedServer | undefined;
  let logsFolder: string;
  let dagNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  beforeEach(async () => {
    logsFolder = await mkdtemp(path.join(os.tmpdir(), 'tsflow-redaction-'));
  });
  afterEach(async () => {
    await stopAll();
    await server?.close();
    server = undefined;
    await rm(logsFolder, { recursive: true, force: true });
  });

  /** Every file under `folder`, concatenated. */
  async function readAll(folder: string): Promise<string> {
    const files = (await readdir(folder, { recursive: true, withFileTypes: true })).filter((f) => f.isFile());
    const texts = await Promise.all(files.map((f) => readFile(path.join(f.parentPath, f.name), 'utf8')));
    return texts.join('\n');
  }

  for (const deferrable of [true, false]) {
    it(`a failing poll against a URL with ?token=… leaks it nowhere (${deferrable ? 'deferrable' : 'poke mode'})`, async () => {
      // Two transient answers (logged as reasons), then a 401 whose body quotes the whole request URL.
      server = await ScriptedServer.start((n, request) =>
        n < 2
          ? { status: 503, body: `busy; retry ${request.url}` }
          : { status: 401, body: { error: `token ${SECRET} expired`, request: `http://127.0.0.1${request.url}` } },
      );
      const url = server.url(`/jobs/7?token=${SECRET}&page=2`);
      const dagId = `redaction_${++dagNo}`;
      const sensorDag = dag({ dagId }, () => {
        new HttpSensor({ taskId: 'wait', url, deferrable, pokeInterval: 0.05, retries: 0 });
      });
      const bag = DagBag.of([sensorDag]);
      const worker = captureLogs();
      const triggererLog = captureLogs();
      const executor = new SequentialExecutor({
        logger: silentLogger(),
        runTask: (key, signal, onState) =>
          runTaskInstance(
            { db: t.database.db, logger: worker.logger, logsFolder, hostname: 'test', pid: process.pid, defaults: { deferrable: false }, onState },
            bag.getDag(key.dagId),
            key,
            { signal },
          ),
      });
      const scheduler = track(new Scheduler({ database: t.database, dagBag: bag, executor, logger: silentLogger(), notifier: await startNotifier(t.database) }));
      await scheduler.start();
      const registry = await TriggerRegistry.create({ folders: [], logger: silentLogger() });
      const triggerer = track(
        new Triggerer(
          { database: t.database, registry, logger: triggererLog.logger, notifier: await startNotifier(t.database) },
          { heartbeatIntervalMs: 1000, healthCheckThresholdMs: 5000, pollIntervalMs: 2000 },
        ),
      );
      await triggerer.start();
      const failed = deferrable ? waitForEvent(triggerer, 'trigger:failed') : undefined;
      const ended = waitForEvent(scheduler, 'run:state', (r) => r.dagId === dagId && r.state !== 'running', 20_000);
      await upsertDags(t.database.db, [{ dagId, fileloc: '' }]);
      await createDagRun(t.database.db, { dagId, runId: 'r1', conf: {}, logicalDate: new Date() });
      expect((await ended).state).to.equal('failed');
      await scheduler.stop();
      await triggerer.stop();

      const taskLog = await readAll(logsFolder);
      expect(taskLog, 'the task log says why').to.contain('answered 401 Unauthorized');
      expect(taskLog, 'and shows the URL without its query').to.contain(server.url('/jobs/7'));
      const shown: Record<string, string> = { 'task log': taskLog, 'worker log': worker.text(), 'triggerer log': triggererLog.text() };
      if (failed) {
        const failure = await failed;
        expect(failure.error).to.contain('answered 401');
        shown['trigger failure'] = failure.error;
        expect(triggererLog.text(), 'the triggerer logged the transient answers').to.contain('answered 503');
      }
      for (const [where, text] of Object.entries(shown)) {
        expect(text, where).not.to.contain(SECRET);
        expect(text, where).not.to.contain('token=');
        expect(text, where).not.to.contain('page=2');
      }
    });
  }

  it('refuses an HttpSensor whose URL holds user:password@ when the DAG is built, without echoing the password', () => {
    let error: unknown;
    try {
      dag({ dagId: 'with_credentials' }, () => new HttpSensor({ taskId: 'h', url: 'http://admin:Pa55word-x@example.com:8080/job?token=abc123' }));
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(InvalidTriggerKwargsError);
    const message = (error as Error).message;
    expect(message).to.match(/^sensor 'h': HttpPollTrigger url http:\/\/example\.com:8080\/job holds credentials/);
    expect(message).to.contain('headers');
    expect(message).not.to.contain('Pa55word-x');
    expect(message).not.to.contain('admin');
    expect(message).not.to.contain('abc123');
  });
});
