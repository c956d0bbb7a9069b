import { expect } from 'chai';
import { ContinuousTimetable, DeltaDataIntervalTimetable, NullTimetable, OnceTimetable } from '../src/scheduling/index.ts';
import { at, dueRuns, iso } from './support/timetables.ts';

describe('DeltaDataIntervalTimetable: a run per fixed interval', () => {
  const sixHours = new DeltaDataIntervalTimetable(6 * 3600);

  it('catchup: true creates every interval from startDate, bounded by endDate', () => {
    const runs = dueRuns(sixHours, { earliest: at('2026-01-01T00:00:00Z'), catchup: true }, at('2026-01-02T01:00:00Z'));
    expect(runs.map((r) => r.logicalDate.toISOTime())).to.deep.equal(['00:00:00.000Z', '06:00:00.000Z', '12:00:00.000Z', '18:00:00.000Z']);
    expect(runs[0]?.runAfter.toISO()).to.equal('2026-01-01T06:00:00.000Z');
    const bounded = dueRuns(sixHours, { earliest: at('2026-01-01T00:00:00Z'), latest: at('2026-01-01T06:00:00Z'), catchup: true }, at('2026-02-01'));
    expect(bounded).to.have.length(2);
  });

  it('keeps startDate as it is: an interval is not aligned to anything else', () => {
    const run = sixHours.nextRun(undefined, { earliest: at('2026-01-01T05:17:00Z'), catchup: true }, at('2026-02-01'));
    expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-01T05:17:00.000Z', '2026-01-01T11:17:00.000Z']);
  });

  it('catchup: false after downtime: now floored to a multiple of the interval since the epoch, minus one interval', () => {
    const last = { start: at('2026-01-01T00:00:00Z'), end: at('2026-01-01T06:00:00Z') };
    const run = sixHours.nextRun(last, { earliest: at('2026-01-01T00:00:00Z'), catchup: false }, at('2026-01-05T10:30:00Z'));
    expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-05T00:00:00.000Z', '2026-01-05T06:00:00.000Z']);
    const sevenHours = new DeltaDataIntervalTimetable(7 * 3600);
    // 2026-01-05T10:30Z is 491,002.5 hours after the epoch; floored to a multiple of 7 h (491,001) that is 09:00Z.
    const seven = sevenHours.nextRun(undefined, { earliest: at('2026-01-01T00:00:00Z'), catchup: false }, at('2026-01-05T10:30:00Z'));
    expect(iso(seven?.dataInterval)).to.deep.equal(['2026-01-05T02:00:00.000Z', '2026-01-05T09:00:00.000Z']);
  });

  it('catchup: false continues from the last run when it is newer than the latest interval', () => {
    const last = { start: at('2026-01-05T06:00:00Z'), end: at('2026-01-05T12:00:00Z') };
    const run = sixHours.nextRun(last, { earliest: at('2026-01-01T00:00:00Z'), catchup: false }, at('2026-01-05T12:30:00Z'));
    expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-05T12:00:00.000Z', '2026-01-05T18:00:00.000Z']);
  });

  it('a manual run covers the interval before its trigger time', () => {
    expect(iso(sixHours.inferManualInterval(at('2026-01-05T10:30:00Z')))).to.deep.equal(['2026-01-05T04:30:00.000Z', '2026-01-05T10:30:00.000Z']);
  });

  it('summarises itself', () => {
    expect(sixHours.summary).to.equal('every 6h');
    expect(new DeltaDataIntervalTimetable(90061).summary).to.equal('every 1d 1h 1m 1s');
  });
});

describe('OnceTimetable (@once)', () => {
  const once = new OnceTimetable();

  it('runs once at startDate whatever catchup says, and never again', () => {
    for (const catchup of [true, false]) {
      const run = once.nextRun(undefined, { earliest: at('2026-01-01T00:00:00Z'), catchup }, at('2026-06-01'));
      expect(iso(run?.dataInterval)).to.deep.equal(['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z']);
      expect(run?.runAfter.toISO()).to.equal('2026-01-01T00:00:00.000Z');
      expect(once.nextRun(run?.dataInterval, { earliest: at('2026-01-01T00:00:00Z'), catchup }, at('2026-06-01'))).to.equal(undefined);
    }
  });

  it('without startDate runs now; with a startDate after endDate, never', () => {
    expect(once.nextRun(undefined, { catchup: false }, at('2026-06-01T12:00:00Z'))?.runAfter.toISO()).to.equal('2026-06-01T12:00:00.000Z');
    expect(once.nextRun(undefined, { earliest: at('2026-02-01'), latest: at('2026-01-01'), catchup: false }, at('2026-06-01'))).to.equal(undefined);
  });
});

describe('ContinuousTimetable (@continuous)', () => {
  const continuous = new ContinuousTimetable();

  it('first covers [startDate, now], then [last end, now], each due at once', () => {
    const first = continuous.nextRun(undefined, { earliest: at('2026-01-01'), catchup: false }, at('2026-01-01T10:00:00Z'));
    expect(iso(first?.dataInterval)).to.deep.equal(['2026-01-01T00:00:00.000Z', '2026-01-01T10:00:00.000Z']);
    expect(first?.runAfter.toISO()).to.equal('2026-01-01T10:00:00.000Z');
    const second = continuous.nextRun(first?.dataInterval, { earliest: at('2026-01-01'), catchup: false }, at('2026-01-01T10:05:00Z'));
    expect(iso(second?.dataInterval)).to.deep.equal(['2026-01-01T10:00:00.000Z', '2026-01-01T10:05:00.000Z']);
  });

  it('does not start before startDate, nor after endDate, nor without a startDate', () => {
    const early = continuous.nextRun(undefined, { earliest: at('2026-03-01'), catchup: false }, at('2026-01-01'));
    expect(early?.runAfter.toISO()).to.equal('2026-03-01T00:00:00.000Z');
    expect(continuous.nextRun(undefined, { earliest: at('2026-01-01'), latest: at('2026-02-01'), catchup: false }, at('2026-03-01'))).to.equal(undefined);
    expect(continuous.nextRun(undefined, { catchup: false }, at('2026-03-01'))).to.equal(undefined);
  });

  it('allows one active run at a time', () => {
    expect(continuous.maxActiveRunsLimit).to.equal(1);
  });
});

describe('NullTimetable (schedule: null)', () => {
  it('never creates a run; a manual run gets a zero-length interval at its trigger time', () => {
    const none = new NullTimetable();
    expect(none.canBeScheduled).to.equal(false);
    expect(none.nextRun()).to.equal(undefined);
    expect(iso(none.inferManualInterval(at('2026-01-05T10:30:00+01:00')))).to.deep.equal(['2026-01-05T09:30:00.000Z', '2026-01-05T09:30:00.000Z']);
    expect(iso(new OnceTimetable().inferManualInterval(at('2026-01-05T10:30:00Z')))).to.deep.equal(['2026-01-05T10:30:00.000Z', '2026-01-05T10:30:00.000Z']);
  });
});
