import { DateTime } from 'luxon';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { countTriggers, latenessMs, seedDeferred, until, untilAllResumed } from '../lib/seed.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * Spread: N DateTimeTriggers due uniformly over a window, on one triggerer. Lateness = commit time of
 * each task instance's `scheduled` state − its trigger's due moment.
 */
export const spread: Scenario = {
  name: 'spread',
  title: 'N triggers due uniformly over 10 s',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 200 : 10_000;
    const windowMs = context.smoke ? 2000 : 10_000;
    const db = await openBenchDatabase('spread', context.adminUrl);
    const triggerer = DaemonProcess.spawn('triggerer', db.url, ['--capacity', String(size), '--triggers-folder', BENCH_TRIGGERS]);
    try {
      const jobId = await triggerer.ready(db.database);
      const start = DateTime.utc().plus({ seconds: context.smoke ? 2 : 4 });
      const step = windowMs / size;
      await seedDeferred(db.database, {
        dagId: 'spread',
        layout: { kind: 'one-run', runId: 'spread' },
        classpath: 'tsflow.triggers.DateTimeTrigger',
        kwargs: Array.from({ length: size }, (_, i) => ({ moment: start.plus({ milliseconds: Math.round(i * step) }).toISO() as string })),
      });
      await until(async () => (await countTriggers(db.database, jobId)) === size, 'all claimed', 60_000, 100);
      const claimedBeforeStart = Date.now() < start.toMillis();
      context.log(`spread ${size}: claimed; the window starts at ${start.toISOTime()}`);
      await untilAllResumed(db.database, size, windowMs + 60_000, 200);
      const late = summarise(await latenessMs(db.database, db.commitTimestamps));
      return [
        {
          scenario: 'spread',
          title: `${size.toLocaleString('en')} triggers due uniformly over ${windowMs / 1000} s`,
          settings: { triggers: size, windowMs, triggerers: 1, claimedBeforeStart },
          figures: { latenessP50Ms: late.p50, latenessP99Ms: late.p99, latenessMaxMs: late.max, latenessMinMs: late.min },
          targets: context.smoke ? [] : [target('p99 lateness, 10,000 over 10 s', '10 ms', late.p99, 10)],
          server: serverInfo(db),
        },
      ];
    } finally {
      await triggerer.stop();
      await db.close();
    }
  },
};
