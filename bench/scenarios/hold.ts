import { DateTime } from 'luxon';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { freePort, scrape } from '../lib/metrics-scrape.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { seedDeferred, until } from '../lib/seed.ts';
import { BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * Hold: N live TimeDeltaTriggers (due in an hour) on one triggerer with capacity N. Claim time =
 * from the commit of the rows to the triggerer reporting all N running; then its resident memory
 * and CPU while it waits, idle.
 */
export const hold: Scenario = {
  name: 'hold',
  title: 'N waits held by one triggerer',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 500 : 100_000;
    const idleMs = context.smoke ? 2000 : 20_000;
    const db = await openBenchDatabase('hold', context.adminUrl);
    const port = await freePort();
    const triggerer = DaemonProcess.spawn('triggerer', db.url, [
      '--capacity', String(size), '--triggers-folder', BENCH_TRIGGERS, '--metrics-port', String(port),
    ]);
    try {
      await triggerer.ready(db.database);
      const rssEmpty = await triggerer.rssMb();
      const due = DateTime.utc().plus({ hours: 1 });
      await seedDeferred(db.database, {
        dagId: 'hold',
        layout: { kind: 'one-run', runId: 'hold' },
        classpath: 'tsflow.triggers.DateTimeTrigger',
        // What a TimeDeltaTrigger({ delta: { hours: 1 } }) stores: the absolute moment.
        kwargs: Array.from({ length: size }, () => ({ moment: due.toISO() as string })),
      });
      const committedAt = Date.now();
      await until(async () => (await scrape(port, 'tsflow_triggerer_triggers_running')) === size, 'all running', 120_000, 50);
      const claimMs = Date.now() - committedAt;
      context.log(`hold ${size}: all running after ${claimMs} ms; measuring idle for ${idleMs / 1000} s`);
      await new Promise((r) => setTimeout(r, context.smoke ? 500 : 5000)); // settle: let the claim's garbage go
      const cpu0 = await triggerer.cpuSeconds();
      const t0 = Date.now();
      let rssPeak = 0;
      while (Date.now() - t0 < idleMs) {
        rssPeak = Math.max(rssPeak, await triggerer.rssMb());
        await new Promise((r) => setTimeout(r, 500));
      }
      const cpuPercent = (100 * (await triggerer.cpuSeconds() - cpu0)) / ((Date.now() - t0) / 1000);
      const rss = await triggerer.rssMb();
      return [
        {
          scenario: 'hold',
          title: `${size.toLocaleString('en')} waits due in an hour, held by one triggerer`,
          settings: { triggers: size, capacity: size, idleWindowMs: idleMs },
          figures: { claimMs, rssIdleMb: rss, rssPeakIdleMb: rssPeak, rssEmptyMb: rssEmpty, idleCpuPercent: cpuPercent },
          targets: context.smoke
            ? []
            : [
                target('all claimed and running', '10 s', claimMs / 1000, 10, 's'),
                target('RSS while holding 100,000', '512 MB', rss, 512, 'MB'),
                target('idle CPU', '1 %', cpuPercent, 1, '%'),
              ],
          server: serverInfo(db),
        },
      ];
    } finally {
      await triggerer.stop();
      await db.close();
    }
  },
};
