import { DateTime } from 'luxon';
import type { DataInterval, RunInfo, TimeRestriction, Timetable } from '../../src/scheduling/index.ts';

/** An instant from an ISO string; strings without an offset are UTC. */
export function at(iso: string): DateTime {
  return DateTime.fromISO(iso, { zone: 'utc', setZone: true });
}

/** `[start, end)` in UTC ISO form, for deep-equal assertions. */
export function iso(interval: DataInterval | undefined): [string, string] | undefined {
  if (interval === undefined) return undefined;
  return [interval.start.toUTC().toISO() ?? '', interval.end.toUTC().toISO() ?? ''];
}

/** The same interval as wall-clock times in `zone`, e.g. `2026-03-29T03:30:00.000+02:00`. */
export function local(interval: DataInterval, zone: string): [string, string] {
  return [interval.start.setZone(zone).toISO() ?? '', interval.end.setZone(zone).toISO() ?? ''];
}

/**
 * Plays the scheduler: asks the timetable for runs one after another, as long as each is due by
 * `now`, and returns them (at most `limit`). The first call passes `last`.
 */
export function dueRuns(timetable: Timetable, restriction: TimeRestriction, now: DateTime, last?: DataInterval, limit = 1000): RunInfo[] {
  const runs: RunInfo[] = [];
  let previous = last;
  for (;;) {
    const run = timetable.nextRun(previous, restriction, now);
    if (run === undefined || run.runAfter > now || runs.length >= limit) return runs;
    runs.push(run);
    previous = run.dataInterval;
  }
}
