import { expect } from 'chai';
import { CronDataIntervalTimetable } from '../src/scheduling/index.ts';
import { at, dueRuns, iso } from './support/timetables.ts';

describe('CronDataIntervalTimetable: a run per cron period, created when the period ends', () => {
  const daily = new CronDataIntervalTimetable('@daily', 'UTC');

  describe('presets', () => {
    const cases: Array<[string, string, string]> = [
      ['@hourly', '2026-01-01T00:00:00.000Z', '2026-01-01T01:00:00.000Z'],
      ['@daily', '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z'],
      // 1 January 2026 is a Thursday; weeks start on Sunday at midnight.
      ['@weekly', '2026-01-04T00:00:00.000Z', '2026-01-11T00:00:00.000Z'],
      ['@monthly', '2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
      ['@quarterly', '2026-01-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z'],
      ['@yearly', '2026-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
      ['@annually', '2026-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
    ];
    for (const [preset, start, end] of cases) {
      it(`${preset}: the first interval from startDate 2026-01-01 is [${start}, ${end})`, () => {
        const run = new CronDataIntervalTimetable(preset).nextRun(undefined, { earliest: at('2026-01-01T00:00:00Z'), catchup: true }, at('2028-01-01T00:00:00Z'));
        expect(iso(run?.dataInterval)).to.deep.equal([start, end]);
        expect(run?.runAfter.toISO(), 'due when the interval ends').to.equal(end);
        expect(run?.logicalDate.toISO()).to.equal(start);
      });
    }

    it('@quarterly runs every three months and @weekly every Sunday', () => {
      const quarters = dueRuns(new CronDataIntervalTimetable('@quarterly'), { earliest: at('2026-01-01'), catchup: true }, at('2027-01-01T00:00:00Z'));
      expect(quarters.map((r) => r.logicalDate.toISODate())).to.deep.equal(['2026-01-01', '2026-04-01', '2026-07-01', '2026-10-01']);
      const weeks = dueRuns(new CronDataIntervalTimetable('@weekly'), { earliest: at('2026-01-01'), catchup: true }, at('2026-01-25T00:00:00Z'));
      expect(weeks.map((r) => r.logicalDate.toISODate())).to.deep.equal(['2026-01-04', '2026-01-11', '2026-01-18']);
    });
  });

  describe('catchup: true', () => {
    it('creates every missed interval since startDate after downtime, oldest first, each once', () => {
      const runs = dueRuns(daily, { earliest: at('2026-01-01'), catchup: true }, at('2026-01-05T10:00:00Z'));
      expect(runs.map((r) => iso(r.dataInterval))).to.deep.equal([
        ['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z'],
        ['2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z'],
        ['2026-01-03T00:00:00.000Z', '2026-01-04T00:00:00.000Z'],
        ['2026-01-04T00:00:00.000Z', '2026-01-05T00:00:00.000Z'],
      ]);
    });

    it('resumes after the last run, not from startDate', () => {
      const last = { start: at('2026-01-02'), end: at('2026-01-03') };
      const runs = dueRuns(daily, { earliest: at('2026-01-01'), catchup: true }, at('2026-01-05T10:00:00Z'), last);
      expect(runs.map((r) => r.logicalDate.toISODate())).to.deep.equal(['2026-01-03', '2026-01-04']);
    });

    it('stops at endDate, inclusive: the interval starting at endDate is the last', () => {
      const runs = dueRuns(daily, { earliest: at('2026-01-01'), latest: at('2026-01-03'), catchup: true }, at('2026-02-01T00:00:00Z'));
      expect(runs.map((r) => r.logicalDate.toISODate())).to.deep.equal(['2026-01-01', '2026-01-02', '2026-01-03']);
      expect(daily.nextRun(runs.at(-1)?.dataInterval, { earliest: at('2026-01-01'), latest: at('2026-01-03'), catchup: true }, at('2026-02-01'))).to.equal(undefined);
    });

    it('aligns a startDate between ticks to the next tick', () => {
      const run = daily.nextRun(undefined, { earliest: at('2026-01-01T05:00:00Z'), catchup: true }, at('2026-02-01'));
      expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z']);
    });

    it('with nothing due yet answers the next interval, due in the future', () => {
      const run = daily.nextRun(undefined, { earliest: at('2026-01-01'), catchup: true }, at('2026-01-01T10:00:00Z'));
      expect(run?.runAfter.toISO()).to.equal('2026-01-02T00:00:00.000Z');
    });
  });

  describe('catchup: false', () => {
    it('after downtime creates only the latest complete interval, then continues from it', () => {
      const last = { start: at('2026-01-01'), end: at('2026-01-02') };
      const now = at('2026-01-05T10:00:00Z');
      const run = daily.nextRun(last, { earliest: at('2026-01-01'), catchup: false }, now);
      expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-04T00:00:00.000Z', '2026-01-05T00:00:00.000Z']);
      const after = daily.nextRun(run?.dataInterval, { earliest: at('2026-01-01'), catchup: false }, now);
      expect(iso(after?.dataInterval), 'the next one is due tomorrow').to.deep.equal(['2026-01-05T00:00:00.000Z', '2026-01-06T00:00:00.000Z']);
      expect(dueRuns(daily, { earliest: at('2026-01-01'), catchup: false }, now, last)).to.have.length(1);
    });

    it('at a boundary, the interval that just ended is the latest complete one', () => {
      const run = daily.nextRun(undefined, { earliest: at('2026-01-01'), catchup: false }, at('2026-01-05T00:00:00Z'));
      expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-04T00:00:00.000Z', '2026-01-05T00:00:00.000Z']);
    });

    it('never goes back before startDate or repeats the last run', () => {
      const future = daily.nextRun(undefined, { earliest: at('2026-03-01T12:00:00Z'), catchup: false }, at('2026-01-05T10:00:00Z'));
      expect(iso(future?.dataInterval)).to.deep.equal(['2026-03-02T00:00:00.000Z', '2026-03-03T00:00:00.000Z']);
      const last = { start: at('2026-01-05'), end: at('2026-01-06') };
      const next = daily.nextRun(last, { earliest: at('2026-01-01'), catchup: false }, at('2026-01-05T10:00:00Z'));
      expect(iso(next?.dataInterval)).to.deep.equal(['2026-01-06T00:00:00.000Z', '2026-01-07T00:00:00.000Z']);
    });

    it('creates nothing once the latest interval starts after endDate', () => {
      const run = daily.nextRun(undefined, { earliest: at('2026-01-01'), latest: at('2026-01-03'), catchup: false }, at('2026-01-10T00:00:00Z'));
      expect(run).to.equal(undefined);
    });
  });

  it('re-aligns to a changed expression from the last run end', () => {
    const noon = new CronDataIntervalTimetable('0 12 * * *');
    const run = noon.nextRun({ start: at('2026-01-01'), end: at('2026-01-02') }, { earliest: at('2026-01-01'), catchup: true }, at('2026-02-01'));
    expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-01T12:00:00.000Z', '2026-01-02T12:00:00.000Z']);
  });

  it('accepts 6 fields with seconds first', () => {
    const runs = dueRuns(new CronDataIntervalTimetable('*/20 * * * * *'), { earliest: at('2026-01-01'), catchup: true }, at('2026-01-01T00:01:00Z'));
    expect(runs.map((r) => r.logicalDate.toISOTime())).to.deep.equal(['00:00:00.000Z', '00:00:20.000Z', '00:00:40.000Z']);
  });

  it('combines day-of-month and day-of-week with OR, as Vixie cron and croniter do', () => {
    const runs = dueRuns(new CronDataIntervalTimetable('0 0 1 * 1'), { earliest: at('2026-03-25'), catchup: true }, at('2026-04-14'));
    // Mondays 30 March, 6 April, and Wednesday 1 April (the 1st of the month); the last interval ends 13 April.
    expect(runs.map((r) => r.logicalDate.toISODate())).to.deep.equal(['2026-03-30', '2026-04-01', '2026-04-06']);
  });

  it('ignores sub-second parts of now', () => {
    const run = daily.nextRun(undefined, { earliest: at('2026-01-01'), catchup: false }, at('2026-01-05T00:00:00.500Z'));
    expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-04T00:00:00.000Z', '2026-01-05T00:00:00.000Z']);
  });

  describe('manual runs', () => {
    it('get the last complete period before the trigger time', () => {
      expect(iso(daily.inferManualInterval(at('2026-01-05T01:00:00Z')))).to.deep.equal(['2026-01-04T00:00:00.000Z', '2026-01-05T00:00:00.000Z']);
      expect(iso(daily.inferManualInterval(at('2026-01-05T00:00:00Z')))).to.deep.equal(['2026-01-04T00:00:00.000Z', '2026-01-05T00:00:00.000Z']);
    });
  });

  it('summarises itself for dags list', () => {
    expect(daily.summary).to.equal('@daily');
    expect(new CronDataIntervalTimetable('30 2 * * *', 'Europe/Amsterdam').summary).to.equal('30 2 * * * (Europe/Amsterdam)');
  });
});
