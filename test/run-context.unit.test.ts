import { expect } from 'chai';
import { DateTime } from 'luxon';
import { pythonIsoformat, runContextFields } from '../src/runner/run-context.ts';
import { parseLogicalDate } from '../src/cli/run-args.ts';
import { UsageError } from '../src/cli/settings.ts';

describe("run context fields (Airflow's ds, ts and friends)", () => {
  const at = (iso: string) => DateTime.fromISO(iso, { setZone: true });

  it("formats ts as Python's isoformat: +00:00, microseconds only when there are some", () => {
    expect(pythonIsoformat(at('2026-01-01T00:00:00Z'))).to.equal('2026-01-01T00:00:00+00:00');
    expect(pythonIsoformat(at('2026-01-01T00:00:00.5Z'))).to.equal('2026-01-01T00:00:00.500000+00:00');
    // Another zone is the same instant written in UTC.
    expect(pythonIsoformat(at('2026-01-01T01:30:00+01:00'))).to.equal('2026-01-01T00:30:00+00:00');
  });

  it('derives ds, ts and the UTC interval from the run; a run without an interval gets a zero-length one', () => {
    const fields = runContextFields({
      conf: { a: 1 },
      logicalDate: new Date('2026-03-01T23:59:59Z'),
      runType: 'scheduled',
      dataIntervalStart: null,
      dataIntervalEnd: null,
      prevSuccess: { dataIntervalStart: new Date('2026-02-28T00:00:00Z'), dataIntervalEnd: null, startDate: null, endDate: new Date('2026-03-01T00:05:00Z') },
    });
    expect([fields.ds, fields.dsNodash, fields.ts, fields.tsNodash]).to.deep.equal(['2026-03-01', '20260301', '2026-03-01T23:59:59+00:00', '20260301T235959']);
    expect(fields.dataIntervalStart.equals(fields.logicalDate)).to.equal(true);
    expect(fields.dataIntervalEnd.equals(fields.logicalDate)).to.equal(true);
    expect(fields.logicalDate.zoneName).to.equal('UTC');
    expect(fields.prevDataIntervalStartSuccess?.toISO()).to.equal('2026-02-28T00:00:00.000Z');
    expect(fields.prevDataIntervalEndSuccess).to.equal(undefined);
    expect(fields.prevStartDateSuccess).to.equal(undefined);
    expect(fields.prevEndDateSuccess?.toISO()).to.equal('2026-03-01T00:05:00.000Z');
  });

  it('reads a command-line date as ISO 8601, UTC when it has no offset, and names a bad one', () => {
    expect(parseLogicalDate('2026-01-02').toISO()).to.equal('2026-01-02T00:00:00.000Z');
    expect(parseLogicalDate('2026-01-02T08:00:00+02:00').toISO()).to.equal('2026-01-02T06:00:00.000Z');
    expect(() => parseLogicalDate('tomorrow', 'LOGICAL_DATE')).to.throw(UsageError, "LOGICAL_DATE 'tomorrow' is not a date");
  });
});
