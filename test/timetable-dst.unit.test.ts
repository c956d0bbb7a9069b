import { expect } from 'chai';
import { CronDataIntervalTimetable, DeltaDataIntervalTimetable } from '../src/scheduling/index.ts';
import { at, dueRuns, local } from './support/timetables.ts';

/**
 * Daylight saving in 2026: Europe/Amsterdam springs forward on 29 March (02:00 → 03:00) and falls
 * back on 25 October (03:00 → 02:00); America/New_York on 8 March and 1 November, at 02:00.
 */
describe('timetables across daylight-saving changes', () => {
  const AMS = 'Europe/Amsterdam';
  const NY = 'America/New_York';

  it('30 2 * * * runs exactly once on the spring-forward day, at 03:30 (the missing 02:30 moved forward by the gap)', () => {
    const timetable = new CronDataIntervalTimetable('30 2 * * *', AMS);
    const runs = dueRuns(timetable, { earliest: at('2026-03-27T00:00:00+01:00'), catchup: true }, at('2026-04-01T00:00:00Z'));
    expect(runs.map((r) => r.logicalDate.setZone(AMS).toISO())).to.deep.equal([
      '2026-03-27T02:30:00.000+01:00',
      '2026-03-28T02:30:00.000+01:00',
      '2026-03-29T03:30:00.000+02:00',
      '2026-03-30T02:30:00.000+02:00',
    ]);
    const onTheDay = runs.filter((r) => r.logicalDate.setZone(AMS).toISODate() === '2026-03-29');
    expect(onTheDay).to.have.length(1);
  });

  it('30 2 * * * runs once on the fall-back day, at the second 02:30 (Airflow localises with fold=1)', () => {
    const timetable = new CronDataIntervalTimetable('30 2 * * *', AMS);
    const runs = dueRuns(timetable, { earliest: at('2026-10-24T00:00:00+02:00'), catchup: true }, at('2026-10-28T00:00:00Z'));
    expect(runs.map((r) => r.logicalDate.setZone(AMS).toISO())).to.deep.equal([
      '2026-10-24T02:30:00.000+02:00',
      '2026-10-25T02:30:00.000+01:00',
      '2026-10-26T02:30:00.000+01:00',
    ]);
    expect(runs[0]?.dataInterval.end.diff(runs[0].dataInterval.start, 'hours').hours, 'the interval holding the fold').to.equal(25);
  });

  it('0 * * * * runs the repeated hour twice when the clocks go back, every interval one hour long', () => {
    const timetable = new CronDataIntervalTimetable('0 * * * *', AMS);
    const runs = dueRuns(timetable, { earliest: at('2026-10-25T00:00:00+02:00'), catchup: true }, at('2026-10-25T04:00:00Z'));
    expect(runs.map((r) => r.logicalDate.setZone(AMS).toISO())).to.deep.equal([
      '2026-10-25T00:00:00.000+02:00',
      '2026-10-25T01:00:00.000+02:00',
      '2026-10-25T02:00:00.000+02:00',
      '2026-10-25T02:00:00.000+01:00',
      '2026-10-25T03:00:00.000+01:00',
      '2026-10-25T04:00:00.000+01:00',
    ]);
    for (const run of runs) expect(run.dataInterval.end.diff(run.dataInterval.start, 'minutes').minutes).to.equal(60);
  });

  it('0 * * * * skips nothing when the clocks go forward: 01:00 is followed by 03:00, one hour later', () => {
    const timetable = new CronDataIntervalTimetable('0 * * * *', AMS);
    const runs = dueRuns(timetable, { earliest: at('2026-03-29T00:00:00+01:00'), catchup: true }, at('2026-03-29T03:00:00Z'));
    expect(runs.map((r) => r.logicalDate.setZone(AMS).toFormat('HH:mm ZZ'))).to.deep.equal(['00:00 +01:00', '01:00 +01:00', '03:00 +02:00', '04:00 +02:00']);
    for (const run of runs) expect(run.dataInterval.end.diff(run.dataInterval.start, 'minutes').minutes).to.equal(60);
  });

  it('0 0 * * * in New York: the intervals of the change days last 23 and 25 hours', () => {
    const timetable = new CronDataIntervalTimetable('0 0 * * *', NY);
    const spring = dueRuns(timetable, { earliest: at('2026-03-07T00:00:00-05:00'), catchup: true }, at('2026-03-10T12:00:00Z'));
    expect(spring.map((r) => local(r.dataInterval, NY))).to.deep.equal([
      ['2026-03-07T00:00:00.000-05:00', '2026-03-08T00:00:00.000-05:00'],
      ['2026-03-08T00:00:00.000-05:00', '2026-03-09T00:00:00.000-04:00'],
      ['2026-03-09T00:00:00.000-04:00', '2026-03-10T00:00:00.000-04:00'],
    ]);
    expect(spring.map((r) => r.dataInterval.end.diff(r.dataInterval.start, 'hours').hours)).to.deep.equal([24, 23, 24]);
    const autumn = dueRuns(timetable, { earliest: at('2026-10-31T00:00:00-04:00'), catchup: true }, at('2026-11-03T12:00:00Z'));
    expect(autumn.map((r) => r.dataInterval.end.diff(r.dataInterval.start, 'hours').hours)).to.deep.equal([24, 25, 24]);
    expect(autumn[1]?.runAfter.setZone(NY).toISO()).to.equal('2026-11-02T00:00:00.000-05:00');
  });

  it('30 2 * * * in New York runs once on 8 March, at 03:30 EDT', () => {
    const runs = dueRuns(new CronDataIntervalTimetable('30 2 * * *', NY), { earliest: at('2026-03-07T00:00:00-05:00'), catchup: true }, at('2026-03-10T12:00:00Z'));
    expect(runs.map((r) => r.logicalDate.setZone(NY).toISO())).to.deep.equal([
      '2026-03-07T02:30:00.000-05:00',
      '2026-03-08T03:30:00.000-04:00',
      '2026-03-09T02:30:00.000-04:00',
    ]);
  });

  it('catchup: false picks the latest complete local day', () => {
    const timetable = new CronDataIntervalTimetable('@daily', AMS);
    const run = timetable.nextRun(undefined, { earliest: at('2026-01-01T00:00:00+01:00'), catchup: false }, at('2026-03-29T12:00:00Z'));
    expect(run && local(run.dataInterval, AMS)).to.deep.equal(['2026-03-28T00:00:00.000+01:00', '2026-03-29T00:00:00.000+01:00']);
  });

  it('a manual run at 01:30 local on the spring-forward day gets the previous local day', () => {
    const interval = new CronDataIntervalTimetable('@daily', AMS).inferManualInterval(at('2026-03-29T01:30:00+01:00'));
    expect(local(interval, AMS)).to.deep.equal(['2026-03-28T00:00:00.000+01:00', '2026-03-29T00:00:00.000+01:00']);
  });

  it('a 24-hour delta stays 24 hours apart in absolute time, so its local hour shifts', () => {
    const runs = dueRuns(new DeltaDataIntervalTimetable(24 * 3600), { earliest: at('2026-03-28T00:00:00+01:00'), catchup: true }, at('2026-03-31T00:00:00Z'));
    expect(runs.map((r) => r.logicalDate.setZone(AMS).toFormat('dd HH:mm'))).to.deep.equal(['28 00:00', '29 00:00', '30 01:00']);
  });
  it('never answers a "previous" tick that is still to come: 03:10 on the spring-forward day is before that day\'s 03:30 run', () => {
    const timetable = new CronDataIntervalTimetable('30 2 * * *', AMS);
    const manual = timetable.inferManualInterval(at('2026-03-29T03:10:00+02:00'));
    expect(local(manual, AMS)).to.deep.equal(['2026-03-27T02:30:00.000+01:00', '2026-03-28T02:30:00.000+01:00']);
    // 02:45 of the first pass through the fall-back hour: that day's run (the second 02:30) is an hour away.
    const now = at('2026-10-25T02:45:00+02:00');
    const run = timetable.nextRun(undefined, { earliest: at('2026-10-01T00:00:00Z'), catchup: false }, now);
    expect(run && local(run.dataInterval, AMS)).to.deep.equal(['2026-10-23T02:30:00.000+02:00', '2026-10-24T02:30:00.000+02:00']);
    expect(run !== undefined && run.runAfter <= now).to.equal(true);
  });
});
