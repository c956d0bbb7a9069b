import { DateTime } from 'luxon';
import { openBenchDatabase } from '../lib/bench-database.ts';
import type { Scenario, ScenarioContext, ScenarioResult } from '../lib/scenario.ts';
import { serverInfo, target } from '../lib/scenario.ts';
import { countTriggers, latenessMs, seedDeferred, until, untilAllResumed, writeSpan } from '../lib/seed.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * Burst: N DateTimeTriggers due at the same instant on one triggerer. Lateness = commit time of each
 * task instance's `scheduled` state − the due moment; and events written per second.
 */
export const burst: Scenario = {
  name: 'burst',
  title: 'N triggers due at the same instant',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const sizes = context.smoke ? [300] : [10_000, 100_000];
    const results: ScenarioResult[] = [];
    for (const size of sizes) results.push(await runBurst(context, size));
    return results;
  },
};

async function runBurst(context: ScenarioContext, size: number): Promise<ScenarioResult> {
  const db = await openBenchDatabase('burst', context.adminUrl);
  const triggerer = DaemonProcess.spawn('triggerer', db.url, ['--capacity', String(size), '--triggers-folder', BENCH_TRIGGERS]);
  try {
    const jobId = await triggerer.ready(db.database);
    const leadMs = context.smoke ? 2000 : Math.max(8000, size / 5);
    const due = DateTime.utc().plus({ milliseconds: leadMs });
    context.log(`burst ${size}: seeding, due at ${due.toISOTime()}`);
    const seededAt = Date.now();
    await seedDeferred(db.database, {
      dagId: 'burst',
      layout: { kind: 'one-run', runId: 'burst' },
      classpath: 'tsflow.triggers.DateTimeTrigger',
      kwargs: Array.from({ length: size }, () => ({ moment: due.toISO() as string })),
    });
    await until(async () => (await countTriggers(db.database, jobId)) === size, 'all claimed', leadMs + 60_000, 100);
    const claimMs = Date.now() - seededAt;
    const claimedBeforeDue = Date.now() < due.toMillis();
    context.log(`burst ${size}: claimed in ${Date.now() - seededAt} ms; waiting for the events`);
    await untilAllResumed(db.database, size, leadMs + 120_000, 100);
    const late = summarise(await latenessMs(db.database, db.commitTimestamps));
    const span = await writeSpan(db.database, db.commitTimestamps);
    const eventsPerSecond = size / Math.max(0.001, (span.last - due.toMillis()) / 1000);
    const limit = size >= 100_000 ? 1500 : 200;
    return {
      scenario: 'burst',
      title: `${size.toLocaleString('en')} triggers due at the same instant`,
      settings: { triggers: size, triggerers: 1, capacity: size, claimedBeforeDue },
      figures: { latenessP50Ms: late.p50, latenessP99Ms: late.p99, latenessMaxMs: late.max, eventsPerSecond, claimMs },
      targets: context.smoke ? [] : [target(`p99 lateness, ${size.toLocaleString('en')} at once`, `${limit} ms`, late.p99, limit)],
      server: serverInfo(db),
    };
  } finally {
    await triggerer.stop();
    await db.close();
  }
}
