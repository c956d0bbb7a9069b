import { expect } from 'chai';
import { DateTime, Duration } from 'luxon';
import {
  ContinuousTimetable,
  CronDataIntervalTimetable,
  DeltaDataIntervalTimetable,
  deserializeTimetable,
  InvalidScheduleError,
  InvalidTimetableError,
  NullTimetable,
  OnceTimetable,
  parseSchedule,
  validateScheduleOptions,
  type ScheduleInput,
  type SerializedTimetable,
  type Timetable,
} from '../src/scheduling/index.ts';
import { at, iso } from './support/timetables.ts';

const etl = { dagId: 'etl' };

function parseError(value: ScheduleInput, timezone?: string): InvalidScheduleError {
  try {
    parseSchedule(value, { ...etl, ...(timezone !== undefined && { timezone }) });
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidScheduleError);
    return error as InvalidScheduleError;
  }
  throw new Error(`schedule ${JSON.stringify(value)} was accepted`);
}

describe('parseSchedule', () => {
  it('turns every accepted form into its timetable', () => {
    expect(parseSchedule(null, etl)).to.be.instanceOf(NullTimetable);
    expect(parseSchedule(undefined, etl)).to.be.instanceOf(NullTimetable);
    expect(parseSchedule('@once', etl)).to.be.instanceOf(OnceTimetable);
    expect(parseSchedule('@continuous', etl)).to.be.instanceOf(ContinuousTimetable);
    for (const value of ['@hourly', '@daily', '@weekly', '@monthly', '@quarterly', '@yearly', '@annually', '*/5 * * * *', '0 */10 * * * *']) {
      expect(parseSchedule(value, etl), value).to.be.instanceOf(CronDataIntervalTimetable);
    }
    for (const value of [Duration.fromObject({ hours: 1 }), { hours: 1 }, 'PT1H', 3600]) {
      const timetable = parseSchedule(value, etl);
      expect(timetable).to.be.instanceOf(DeltaDataIntervalTimetable);
      expect(timetable.serialize()).to.deep.equal({ kind: 'delta', seconds: 3600 });
    }
  });

  it('evaluates cron in the given time zone', () => {
    const timetable = parseSchedule('@daily', { ...etl, timezone: 'Europe/Amsterdam' });
    expect(timetable.serialize()).to.deep.equal({ kind: 'cron', expression: '@daily', timezone: 'Europe/Amsterdam' });
    const run = timetable.nextRun(undefined, { earliest: at('2026-01-01T00:00:00Z'), catchup: true }, at('2026-02-01'));
    expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-01T23:00:00.000Z', '2026-01-02T23:00:00.000Z']);
  });

  it('uses a Timetable object as it is', () => {
    const custom: Timetable = {
      summary: 'custom',
      periodic: false,
      canBeScheduled: false,
      nextRun: () => undefined,
      inferManualInterval: (runAfter) => ({ start: runAfter, end: runAfter }),
      serialize: () => ({ kind: 'custom', name: 'mine', data: null }),
    };
    expect(parseSchedule(custom, etl)).to.equal(custom);
  });

  describe('refuses bad input, naming the DAG, the field and the value', () => {
    it('a cron expression that does not parse', () => {
      const error = parseError('61 * * * *');
      expect(error.message).to.equal(
        "dag 'etl': schedule '61 * * * *' is not a valid cron expression: Invalid value for minute: 61; write 5 fields (minute hour day month weekday, e.g. '0 0 * * *'), 6 with seconds first, or a preset such as '@daily'",
      );
      expect(error.dagId).to.equal('etl');
      expect(error.field).to.equal('schedule');
      expect(error.cause).to.be.instanceOf(InvalidTimetableError);
      expect(parseError('* * * *').message).to.match(/^dag 'etl': schedule '\* \* \* \*' is not a valid cron expression: .*five, six, or seven.*; write 5 fields/);
      expect(parseError('0 0 0 * * * *').message).to.match(/^dag 'etl': schedule '0 0 0 \* \* \* \*' is not a valid cron expression: .*7 parts.*; write 5 fields/);
      expect(parseError('every day').message).to.match(/^dag 'etl': schedule 'every day' is not a valid cron expression/);
    });

    it('an unknown preset', () => {
      expect(parseError('@fortnightly').message).to.equal(
        "dag 'etl': schedule '@fortnightly' is not a known preset; write one of @once, @continuous, @hourly, @daily, @weekly, @monthly, @quarterly, @yearly, @annually, or a cron expression such as '0 0 */14 * *'",
      );
    });

    it('a zero or negative interval', () => {
      expect(parseError(0).message).to.equal(
        "dag 'etl': schedule 0 (seconds) is a zero interval; write a positive interval such as { hours: 1 }, 'PT1H' or 3600, or null for manual runs only",
      );
      expect(parseError({ hours: 0 }).message).to.equal(
        `dag 'etl': schedule {"hours":0} is a zero interval; write a positive interval such as { hours: 1 }, 'PT1H' or 3600, or null for manual runs only`,
      );
      expect(parseError('PT0S').message).to.match(/^dag 'etl': schedule 'PT0S' is a zero interval/);
      expect(parseError(-60).message).to.equal(
        "dag 'etl': schedule must not be negative, got PT-60S; write a positive interval such as { hours: 1 }, 'PT1H' or 3600",
      );
      expect(parseError({ hours: -1 }).message).to.match(/^dag 'etl': schedule must not be negative, got PT-1H; write a positive interval/);
    });

    it('an interval that is not a duration, or has no fixed length', () => {
      expect(parseError('P1X').message).to.equal(
        "dag 'etl': schedule 'P1X' is not an ISO 8601 duration; write e.g. 'PT30S' or { seconds: 30 }; write a positive interval such as { hours: 1 }, 'PT1H' or 3600",
      );
      expect(parseError({ months: 1 }).message).to.equal(
        "dag 'etl': schedule interval P1M has calendar units (months or years) of no fixed length; write a cron preset such as '@monthly' or '@yearly' instead",
      );
    });

    it('an unknown time zone', () => {
      const error = parseError('@daily', 'Mars/Olympus_Mons');
      expect(error.message).to.equal(
        "dag 'etl': timezone 'Mars/Olympus_Mons' is not a known IANA time zone; write a name such as 'UTC', 'Europe/Amsterdam' or 'America/New_York'",
      );
      expect(error.field).to.equal('timezone');
    });
  });
});

describe('validateScheduleOptions', () => {
  const start = at('2026-01-01T00:00:00Z');

  function optionsError(options: Parameters<typeof validateScheduleOptions>[0]): InvalidScheduleError {
    try {
      validateScheduleOptions(options);
    } catch (error) {
      expect(error).to.be.instanceOf(InvalidScheduleError);
      return error as InvalidScheduleError;
    }
    throw new Error('the options were accepted');
  }

  it('defaults to manual runs only, no catchup, UTC', () => {
    const compiled = validateScheduleOptions({ dagId: 'etl' });
    expect(compiled.timetable).to.be.instanceOf(NullTimetable);
    expect(compiled.catchup).to.equal(false);
    expect(compiled.timezone).to.equal('UTC');
  });

  it("takes the time zone from startDate's zone unless one is given", () => {
    const amsterdam = DateTime.fromISO('2026-01-01T00:00:00', { zone: 'Europe/Amsterdam' });
    expect(validateScheduleOptions({ dagId: 'etl', schedule: '@daily', startDate: amsterdam }).timezone).to.equal('Europe/Amsterdam');
    expect(validateScheduleOptions({ dagId: 'etl', schedule: '@daily', startDate: amsterdam, timezone: 'Asia/Tokyo' }).timetable.serialize()).to.deep.equal({
      kind: 'cron',
      expression: '@daily',
      timezone: 'Asia/Tokyo',
    });
    expect(validateScheduleOptions({ dagId: 'etl', schedule: '@daily', startDate: DateTime.fromISO('2026-01-01T00:00:00+05:00', { setZone: true }) }).timezone).to.equal('UTC');
  });

  it('requires a startDate with a periodic schedule and with @continuous', () => {
    const error = optionsError({ dagId: 'etl', schedule: '@daily' });
    expect(error.message).to.equal(
      "dag 'etl': startDate is required with schedule '@daily'; write e.g. startDate: DateTime.fromISO('2026-01-01T00:00:00Z'), or schedule: null for manual runs only",
    );
    expect(error.field).to.equal('startDate');
    expect(optionsError({ dagId: 'etl', schedule: { hours: 1 } }).message).to.match(/startDate is required with schedule 'every 1h'/);
    expect(optionsError({ dagId: 'etl', schedule: '@continuous' }).message).to.match(/startDate is required with schedule '@continuous'/);
    expect(validateScheduleOptions({ dagId: 'etl', schedule: '@once' }).timetable).to.be.instanceOf(OnceTimetable);
  });

  it('refuses a startDate after the endDate', () => {
    const error = optionsError({ dagId: 'etl', schedule: '@daily', startDate: start, endDate: at('2025-12-31T00:00:00Z') });
    expect(error.message).to.equal(
      "dag 'etl': endDate 2025-12-31T00:00:00.000Z is before startDate 2026-01-01T00:00:00.000Z; write an endDate at or after the startDate, or leave it out",
    );
    expect(error.field).to.equal('endDate');
  });

  it("refuses catchup without a startDate (Airflow's _validate_catchup)", () => {
    const error = optionsError({ dagId: 'etl', schedule: '@once', catchup: true });
    expect(error.message).to.equal("dag 'etl': catchup: true needs a startDate to catch up from; add a startDate or write catchup: false");
    expect(error.field).to.equal('catchup');
    expect(validateScheduleOptions({ dagId: 'etl', schedule: null, catchup: true }).catchup).to.equal(true);
  });

  it('refuses more active runs than the timetable allows', () => {
    const error = optionsError({ dagId: 'etl', schedule: '@continuous', startDate: start, maxActiveRuns: 16 });
    expect(error.message).to.equal("dag 'etl': maxActiveRuns 16 is more than schedule '@continuous' allows; write maxActiveRuns: 1");
    expect(validateScheduleOptions({ dagId: 'etl', schedule: '@continuous', startDate: start, maxActiveRuns: 1 }).timetable.maxActiveRunsLimit).to.equal(1);
  });

  it('refuses an invalid date', () => {
    const error = optionsError({ dagId: 'etl', schedule: '@daily', startDate: DateTime.fromISO('2026-13-01') });
    expect(error.message).to.match(/^dag 'etl': startDate is not a valid date \(.+\); write e\.g\. DateTime\.fromISO/);
  });

  it('passes schedule errors on with the DAG named', () => {
    expect(optionsError({ dagId: 'nightly', schedule: '@fortnightly', startDate: start }).message).to.match(/^dag 'nightly': schedule '@fortnightly'/);
  });
});

describe('serialize → deserializeTimetable', () => {
  const restriction = { earliest: at('2026-01-01T00:00:00Z'), catchup: true };
  const now = at('2026-03-29T12:00:00Z');
  const timetables: Timetable[] = [
    new CronDataIntervalTimetable('30 2 * * *', 'Europe/Amsterdam'),
    new CronDataIntervalTimetable('@weekly'),
    new CronDataIntervalTimetable('*/20 * * * * *'),
    new DeltaDataIntervalTimetable(5400),
    new OnceTimetable(),
    new ContinuousTimetable(),
    new NullTimetable(),
  ];

  for (const timetable of timetables) {
    it(`${timetable.summary} survives a round trip through JSON and schedules the same`, () => {
      const json = JSON.parse(JSON.stringify(timetable.serialize())) as SerializedTimetable;
      const back = deserializeTimetable(json);
      expect(back.constructor).to.equal(timetable.constructor);
      expect(back.serialize()).to.deep.equal(timetable.serialize());
      expect(back.summary).to.equal(timetable.summary);
      expect(iso(back.nextRun(undefined, restriction, now)?.dataInterval)).to.deep.equal(iso(timetable.nextRun(undefined, restriction, now)?.dataInterval));
    });
  }

  it('rebuilds a custom timetable with the loader it is given, and refuses one without', () => {
    const custom = new OnceTimetable();
    const json: SerializedTimetable = { kind: 'custom', name: 'mine', data: { a: 1 } };
    expect(deserializeTimetable(json, (name, data) => (name === 'mine' && data !== null ? custom : new NullTimetable()))).to.equal(custom);
    expect(() => deserializeTimetable(json)).to.throw(InvalidTimetableError, "custom timetable 'mine' cannot be rebuilt without a loader");
    expect(() => deserializeTimetable({ kind: 'weird' } as unknown as SerializedTimetable)).to.throw(InvalidTimetableError, 'unknown timetable kind');
  });
});
