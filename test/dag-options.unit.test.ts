import { expect } from 'chai';
import { DateTime } from 'luxon';
import { DagSpec, serializeDag, serializedDagHash } from '../src/dag-bag/serialized-dag.ts';
import { runIdFor } from '../src/db/next-dagrun.ts';
import { InvalidScheduleError } from '../src/scheduling/errors.ts';
import { BaseOperator, dag, type DagOptions } from '../src/sdk/index.ts';
import { InvalidParamsError, param, resolveParams } from '../src/sdk/params.ts';

class Noop extends BaseOperator {
  override execute(): void {}
}

function define(options: Omit<DagOptions, 'dagId'>) {
  return dag({ dagId: 'opts', ...options }, () => {
    const a = new Noop({ taskId: 'a', retries: 2, retryDelay: 30, queue: 'heavy' });
    a.setDownstream(new Noop({ taskId: 'b', priorityWeight: 5 }));
  });
}

function refused(options: Omit<DagOptions, 'dagId'>): InvalidScheduleError {
  try {
    define(options);
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidScheduleError);
    return error as InvalidScheduleError;
  }
  throw new Error('the options were accepted');
}

describe('dag() schedule options (unit)', () => {
  it("defaults as Airflow 3: manual only, catchup off, 16 active runs and tasks, not paused", () => {
    const d = define({});
    expect(d.timetable.summary).to.equal('None');
    expect(d).to.deep.include({ catchup: false, maxActiveRuns: 16, maxActiveTasks: 16, isPausedUponCreation: false, dagrunTimeout: undefined });
  });

  it('refuses bad options naming the DAG, the field and the value', () => {
    const cases: [Omit<DagOptions, 'dagId'>, string, RegExp][] = [
      [{ schedule: '61 * * * *', startDate: '2026-01-01' }, 'schedule', /dag 'opts': schedule .*61/],
      [{ schedule: '@fortnightly', startDate: '2026-01-01' }, 'schedule', /'@fortnightly' is not a known preset/],
      [{ schedule: '@daily', startDate: '2026-02-01', endDate: '2026-01-01' }, 'endDate', /endDate .* is before startDate/],
      [{ schedule: '@daily', startDate: '2026-01-01', timezone: 'Mars/Olympus' }, 'timezone', /Mars\/Olympus/],
      [{ schedule: '@daily' }, 'startDate', /startDate is required/],
      [{ startDate: 'yesterday' }, 'startDate', /"yesterday" is not a valid date/],
      [{ maxActiveRuns: 0 }, 'maxActiveRuns', /at least 1, got 0/],
      [{ maxActiveTasks: 2.5 }, 'maxActiveTasks', /got 2.5/],
      [{ dagrunTimeout: -1 }, 'dagrunTimeout', /must not be negative/],
      [{ schedule: '@continuous', startDate: '2026-01-01', maxActiveRuns: 2 }, 'maxActiveRuns', /allows; write maxActiveRuns: 1/],
      [{ params: { n: param(-1, { type: 'integer', minimum: 0 }) } }, 'params.n', /its default -1 is not valid/],
    ];
    for (const [options, field, message] of cases) {
      const error = refused(options);
      expect(error.field, JSON.stringify(options)).to.equal(field);
      expect(error.dagId).to.equal('opts');
      expect(error.message).to.match(message);
    }
  });

  it('reads a date string without an offset in the DAG timezone, and @continuous gets maxActiveRuns 1', () => {
    const d = define({ schedule: '30 2 * * *', startDate: '2026-03-01T00:00:00', timezone: 'Europe/Amsterdam' });
    expect(d.startDate?.toISO()).to.equal('2026-02-28T23:00:00.000Z');
    expect(define({ schedule: '@continuous', startDate: '2026-01-01' }).maxActiveRuns).to.equal(1);
  });

  it('serializes tasks, dependencies and options to JSON a scheduler rebuilds; the hash ignores key order', () => {
    const d = define({ schedule: '@daily', startDate: DateTime.fromISO('2026-01-01T00:00:00Z'), catchup: true, maxActiveRuns: 3, dagrunTimeout: { hours: 1 } });
    const json = serializeDag(d, '/dags/opts.ts');
    const roundTripped = JSON.parse(JSON.stringify(json)) as typeof json;
    expect(serializedDagHash(roundTripped)).to.equal(serializedDagHash(json));
    const spec = new DagSpec(roundTripped);
    expect(spec.timetable?.summary).to.equal('@daily');
    expect(spec.startDate?.toISO()).to.equal('2026-01-01T00:00:00.000Z');
    expect(spec.tasks.get('a')).to.deep.include({ retries: 2, retryDelaySeconds: 30, queue: 'heavy', downstream: ['b'] });
    expect(spec.tasks.get('b')).to.deep.include({ upstream: ['a'], priorityWeight: 5, startFromTrigger: false });
    expect(roundTripped).to.deep.include({ catchup: true, maxActiveRuns: 3, dagrunTimeoutSeconds: 3600, scheduled: true });
    const changed = serializeDag(define({ schedule: '@hourly', startDate: '2026-01-01T00:00:00Z' }), '/dags/opts.ts');
    expect(serializedDagHash(changed)).not.to.equal(serializedDagHash(json));
  });

  it("writes Airflow's run ids", () => {
    expect(runIdFor('scheduled', DateTime.fromISO('2026-01-02T03:04:05Z'))).to.equal('scheduled__2026-01-02T03:04:05+00:00');
    expect(runIdFor('manual', new Date('2026-01-02T03:04:05.250Z'))).to.equal('manual__2026-01-02T03:04:05.250000+00:00');
  });
});

describe('DAG params (unit)', () => {
  const params = define({ params: { n: param(5, { type: 'integer', minimum: 1 }), name: 'x', needed: param(undefined, { type: 'string' }) } }).params;

  it('resolves defaults overridden by conf, each checked against its schema', () => {
    expect(resolveParams(params, { needed: 'yes' })).to.deep.equal({ n: 5, name: 'x', needed: 'yes' });
    expect(resolveParams(params, { n: 7, needed: 'yes', extra: true })).to.deep.equal({ n: 7, name: 'x', needed: 'yes' });
  });

  it('refuses a missing required param and an invalid value, naming the field', () => {
    expect(() => resolveParams(params, {})).to.throw(InvalidParamsError, "param 'needed' is required");
    try {
      resolveParams(params, { n: 0, needed: 'yes' });
      expect.fail('accepted n = 0');
    } catch (error) {
      expect(error).to.be.instanceOf(InvalidParamsError);
      expect((error as InvalidParamsError).field).to.equal('n');
      expect((error as Error).message).to.match(/param 'n': 0 is not valid: must be >= 1/);
    }
  });
});
