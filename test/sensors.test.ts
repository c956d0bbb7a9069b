import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { DateTime } from 'luxon';
import {
  BaseSensorOperator,
  dag,
  DateTimeSensor,
  FileSensor,
  HttpSensor,
  TimeDeltaSensor,
  type BaseSensorOptions,
  type JsonValue,
} from '../src/sdk/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { CallOperator, indexOf, runThroughScheduler, type Seen } from './support/dag-runner.ts';
import { ScriptedServer } from './support/http-server.ts';
import { taskInstance } from './support/rig.ts';

type Mode = 'deferrable' | 'poke' | 'reschedule';
const MODES: Record<Mode, Pick<BaseSensorOptions, 'deferrable' | 'mode' | 'pokeInterval'>> = {
  deferrable: { deferrable: true, pokeInterval: 0.2 },
  poke: { deferrable: false, mode: 'poke', pokeInterval: 0.1 },
  reschedule: { deferrable: false, mode: 'reschedule', pokeInterval: 0.2 },
};

/** A condition a sensor waits for, and the act that makes it true. */
interface Scenario {
  sensor(options: Pick<BaseSensorOptions, 'taskId' | 'priorityWeight' | 'deferrable' | 'mode' | 'pokeInterval'>): BaseSensorOperator;
  release(): Promise<void>;
  /** The sensor's XCom once done, if it has one to check. */
  checkResult?(value: JsonValue | undefined): void;
}

describe('sensors, end to end through the scheduler and the triggerer, in every mode', function () {
  this.timeout(30_000);
  let t: TestDatabase;
  let dir: string;
  let server: ScriptedServer | undefined;
  let dagNo = 0;

  before(async () => {
    t = await createTestDatabase();
  });
  after(() => t.drop());
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tsflow-sensor-'));
  });
  afterEach(async () => {
    await stopAll();
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  const xcom = async (runId: string, taskId: string) =>
    (await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', runId).where('task_id', '=', taskId).executeTakeFirst())?.value;

  /** A service that answers 503, then 404 until released, then 200 with the JSON the sensor expects. */
  async function jobService(): Promise<{ url: string; release: () => void }> {
    let ready = false;
    server = await ScriptedServer.start((n) =>
      n === 0 ? { status: 503, body: 'starting' } : ready ? { status: 200, body: { state: 'done', rows: 3 } } : { status: 404, body: 'no such job yet' },
    );
    return { url: server.url('/jobs/1'), release: () => void (ready = true) };
  }

  const scenarios: Record<string, () => Promise<Scenario>> = {
    FileSensor: async () => {
      const file = path.join(dir, 'landing', 'orders.csv');
      return {
        sensor: (options) => new FileSensor({ ...options, path: path.join(dir, 'landing', '*.csv') }),
        release: async () => {
          await mkdir(path.dirname(file), { recursive: true });
          await writeFile(file, 'id\n1\n');
        },
        checkResult: (value) => expect(value).to.deep.equal({ paths: [file], truncated: false }),
      };
    },
    HttpSensor: async () => {
      const service = await jobService();
      return {
        sensor: (options) => new HttpSensor({ ...options, url: service.url, expect: { json: { path: 'state', equals: 'done' } } }),
        release: async () => service.release(),
        checkResult: (value) => expect(value).to.deep.include({ status: 200, body: { state: 'done', rows: 3 }, bodyTruncated: false }),
      };
    },
    TimeDeltaSensor: async () => ({
      sensor: (options) => new TimeDeltaSensor({ ...options, delta: 1 }),
      release: async () => undefined,
    }),
    DateTimeSensor: async () => {
      const targetTime = DateTime.utc().plus({ seconds: 1.2 });
      return {
        sensor: (options) => new DateTimeSensor({ ...options, targetTime }),
        release: async () => undefined,
      };
    },
  };

  for (const [name, makeScenario] of Object.entries(scenarios)) {
    for (const mode of Object.keys(MODES) as Mode[]) {
      it(`${name}, ${mode === 'deferrable' ? 'deferrable: true' : `deferrable: false, mode: '${mode}'`}`, async () => {
        const scenario = await makeScenario();
        const sensorDag = dag({ dagId: `sensors_${++dagNo}` }, () => {
          // The sensor goes first (higher priority); 'release' makes its condition true, if it ever gets the one slot.
          scenario.sensor({ taskId: 'wait', priorityWeight: 10, ...MODES[mode] });
          new CallOperator({ taskId: 'release', fn: () => scenario.release() });
        });
        const onSeen = (line: Seen) => {
          // In poke mode the sensor holds the only slot: the outside world has to make the condition true.
          if (mode === 'poke' && line.task === 'wait' && line.state === 'running') void scenario.release();
        };
        const { state, seen, runId } = await runThroughScheduler(t, sensorDag, { onSeen });
        expect(state, JSON.stringify(seen)).to.equal('success');
        const has = (s: string) => indexOf(seen, 'wait', s) >= 0;
        const released = indexOf(seen, 'release', 'success');
        if (mode === 'deferrable') {
          const deferred = indexOf(seen, 'wait', 'deferred');
          expect(deferred, 'the sensor was deferred').to.be.at.least(0);
          expect(has('up_for_reschedule')).to.equal(false);
          // With one slot, 'release' could only run while the sensor waited if the sensor held no slot.
          expect(released, 'release ran while the sensor was deferred').to.be.within(deferred + 1, indexOf(seen, 'wait', 'running', deferred) - 1);
        } else if (mode === 'reschedule') {
          const rescheduled = indexOf(seen, 'wait', 'up_for_reschedule');
          expect(rescheduled, 'the sensor released its slot between pokes').to.be.at.least(0);
          expect(has('deferred')).to.equal(false);
          expect(released, 'release ran while the sensor was up_for_reschedule').to.be.within(rescheduled + 1, indexOf(seen, 'wait', 'success') - 1);
        } else {
          expect(has('deferred') || has('up_for_reschedule'), 'a poking sensor neither defers nor reschedules').to.equal(false);
          expect(seen.filter((l) => l.task === 'wait' && l.state === 'running')).to.have.length(1);
          expect(indexOf(seen, 'release', 'running'), 'the poking sensor held the slot until it succeeded').to.be.greaterThan(indexOf(seen, 'wait', 'success'));
        }
        const ti = await taskInstance(t.database, { dagId: sensorDag.dagId, runId, taskId: 'wait' });
        expect(ti.try_number, 'waiting is not a new try').to.equal(1);
        scenario.checkResult?.(await xcom(runId, 'wait'));
      });
    }
  }

  it('takes deferrable from TSFLOW_DEFAULT_DEFERRABLE when the sensor leaves it unset', async () => {
    const file = path.join(dir, 'flag');
    const sensorDag = dag({ dagId: `sensors_${++dagNo}` }, () => {
      new FileSensor({ taskId: 'wait', priorityWeight: 10, path: file, pokeInterval: 0.2 });
      new CallOperator({ taskId: 'release', fn: () => writeFile(file, '1') });
    });
    const { state, seen } = await runThroughScheduler(t, sensorDag, { defaults: { deferrable: true } });
    expect(state).to.equal('success');
    expect(indexOf(seen, 'wait', 'deferred')).to.be.at.least(0);
  });

  describe('timeouts', () => {
    const never = () => path.join(dir, 'never-arrives.csv');
    const cases: { mode: Mode; softFail: boolean; expected: string }[] = [
      { mode: 'deferrable', softFail: false, expected: 'failed' },
      { mode: 'deferrable', softFail: true, expected: 'skipped' },
      { mode: 'reschedule', softFail: true, expected: 'skipped' },
      { mode: 'poke', softFail: false, expected: 'failed' },
    ];
    for (const { mode, softFail, expected } of cases) {
      it(`${mode}${softFail ? ' with softFail' : ''}: a sensor past its timeout is ${expected}, without retrying`, async () => {
        const sensorDag = dag({ dagId: `sensors_${++dagNo}` }, () => {
          new FileSensor({ taskId: 'wait', path: never(), timeout: 0.6, softFail, retries: 2, retryDelay: 0.1, ...MODES[mode] });
        });
        const { state, seen, runId } = await runThroughScheduler(t, sensorDag);
        expect(state).to.equal(expected === 'failed' ? 'failed' : 'success');
        const ti = await taskInstance(t.database, { dagId: sensorDag.dagId, runId, taskId: 'wait' });
        expect(ti.state).to.equal(expected);
        expect(ti.try_number, 'a sensor timeout is not retried').to.equal(1);
        expect(ti.error).to.match(softFail ? /skipped \(softFail\)/ : /SensorTimeout: sensor 'wait' timed out/);
        if (mode === 'deferrable') expect(indexOf(seen, 'wait', 'deferred')).to.be.at.least(0);
      });
    }
  });

  describe('startFromTrigger', () => {
    it('goes from scheduled to deferred without a worker, and runs on one only after the trigger fired', async () => {
      const file = path.join(dir, 'later.csv');
      const sensorDag = dag({ dagId: `sensors_${++dagNo}` }, () => {
        new FileSensor({ taskId: 'wait', path: file, startFromTrigger: true, timeout: 60 });
      });
      let atDeferral: Awaited<ReturnType<typeof taskInstance>> | undefined;
      const { state, seen, runId } = await runThroughScheduler(t, sensorDag, {
        onSeen: (line, key) => {
          if (line.task !== 'wait' || line.state !== 'deferred') return;
          void taskInstance(t.database, key).then(async (row) => {
            atDeferral = row;
            await writeFile(file, 'arrived');
          });
        },
      });
      expect(state, JSON.stringify(seen)).to.equal('success');
      const sensorStates = seen.filter((l) => l.task === 'wait').map((l) => l.state);
      expect(sensorStates).to.deep.equal(['scheduled', 'deferred', 'trigger fired', 'queued', 'running', 'success']);
      expect(atDeferral).to.deep.include({ state: 'deferred', try_number: 1, hostname: null, next_method: 'executeComplete' });
      expect(atDeferral?.start_date).to.be.instanceOf(Date);
      expect(atDeferral!.trigger_timeout!.getTime() - atDeferral!.start_date!.getTime()).to.be.closeTo(60_000, 5);
      const ti = await taskInstance(t.database, { dagId: sensorDag.dagId, runId, taskId: 'wait' });
      expect(ti.try_number).to.equal(1);
      expect(await xcom(runId, 'wait')).to.deep.equal({ paths: [file], truncated: false });
    });

    it('starts each retry from the trigger too, and fails with the reason when the endpoint refuses', async () => {
      server = await ScriptedServer.start(() => ({ status: 403, body: { error: 'forbidden for this token' } }));
      const url = server.url('/private');
      const sensorDag = dag({ dagId: `sensors_${++dagNo}` }, () => {
        new HttpSensor({ taskId: 'wait', url, startFromTrigger: true, retries: 1, retryDelay: 0.1 });
      });
      const { state, seen, runId } = await runThroughScheduler(t, sensorDag);
      expect(state).to.equal('failed');
      const deferrals = seen.filter((l) => l.task === 'wait' && l.state === 'deferred');
      expect(deferrals.map((l) => l.tryNumber)).to.deep.equal([1, 2]);
      for (const deferral of deferrals) {
        // The triggerer may report the failure before the scheduler reports the deferral it wrote (two
        // emitters, one commit): order only what one causes the other.
        const at = seen.indexOf(deferral);
        const before = seen.slice(0, at).filter((l) => l.task === 'wait' && l.state !== 'trigger failed');
        expect(before.at(-1), 'deferred straight from scheduled').to.deep.include({ task: 'wait', state: 'scheduled' });
        const scheduledAt = seen.indexOf(before.at(-1) as (typeof seen)[number]);
        const failedAt = indexOf(seen, 'wait', 'trigger failed', scheduledAt);
        expect(failedAt, 'the trigger failed').to.be.greaterThan(scheduledAt);
        expect(indexOf(seen, 'wait', 'running', scheduledAt), 'a worker runs only after the trigger failed').to.be.greaterThan(failedAt);
      }
      const ti = await taskInstance(t.database, { dagId: sensorDag.dagId, runId, taskId: 'wait' });
      expect(ti).to.deep.include({ state: 'failed', try_number: 2 });
      expect(ti.error).to.contain('answered 403 Forbidden: {"error":"forbidden for this token"}');
    });

    it('leaves a sensor whose trigger cannot be built to a worker, where the error fails the task', async () => {
      class NoTriggerSensor extends BaseSensorOperator {
        override poke(): boolean {
          return false;
        }
        override trigger(): never {
          throw new Error('the bucket name is missing from the connection');
        }
      }
      const sensorDag = dag({ dagId: `sensors_${++dagNo}` }, () => {
        new NoTriggerSensor({ taskId: 'wait', startFromTrigger: true });
      });
      const { state, seen, runId } = await runThroughScheduler(t, sensorDag);
      expect(state).to.equal('failed');
      expect(indexOf(seen, 'wait', 'deferred')).to.equal(-1);
      expect(indexOf(seen, 'wait', 'running')).to.be.at.least(0);
      const ti = await taskInstance(t.database, { dagId: sensorDag.dagId, runId, taskId: 'wait' });
      expect(ti.error).to.contain('the bucket name is missing from the connection');
    });

    it('builds a time sensor trigger from the run, and honours timeout with softFail', async () => {
      const sensorDag = dag({ dagId: `sensors_${++dagNo}` }, () => {
        new TimeDeltaSensor({ taskId: 'soon', delta: 0.3, startFromTrigger: true });
        new FileSensor({ taskId: 'never', path: path.join(dir, 'nope'), startFromTrigger: true, timeout: 0.5, softFail: true });
      });
      const { state, seen, runId } = await runThroughScheduler(t, sensorDag);
      expect(state).to.equal('success');
      for (const task of ['soon', 'never']) {
        expect(indexOf(seen, task, 'queued'), `${task} was never queued before deferring`).to.be.greaterThan(indexOf(seen, task, 'deferred'));
      }
      expect((await taskInstance(t.database, { dagId: sensorDag.dagId, runId, taskId: 'soon' })).state).to.equal('success');
      expect((await taskInstance(t.database, { dagId: sensorDag.dagId, runId, taskId: 'never' })).state).to.equal('skipped');
    });
  });

  it('refuses bad sensor options when the DAG is defined, naming the sensor and the field', () => {
    expect(() => dag({ dagId: 'bad_file' }, () => new FileSensor({ taskId: 'w', path: '' }))).to.throw(/sensor 'w': FileExistsTrigger path must not be empty/);
    expect(() => dag({ dagId: 'bad_http' }, () => new HttpSensor({ taskId: 'h', url: 'localhost:8080/x' }))).to.throw(/sensor 'h': HttpPollTrigger url must use http/);
    expect(() => dag({ dagId: 'bad_http2' }, () => new HttpSensor({ taskId: 'h', url: 'http://x', expect: { status: [] } }))).to.throw(/sensor 'h': HttpPollTrigger expect.status must be a non-empty array/);
    expect(() => dag({ dagId: 'bad_sft' }, () => new FileSensor({ taskId: 'f', path: '/x', startFromTrigger: true, deferrable: false }))).to.throw(/startFromTrigger needs deferrable: true/);
  });
});
