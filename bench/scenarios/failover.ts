import { DateTime } from 'luxon';
import { sql } from 'kysely';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { installResumeAudit } from '../lib/resume-audit.ts';
import { serverInfo, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { countTriggers, seedDeferred, until, untilAllResumed } from '../lib/seed.ts';
import { BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * Failover: two triggerer processes hold N triggers between them; one is SIGKILLed. Time until every
 * trigger it held runs on the survivor (health-check threshold 5 s, heartbeat 1 s), and proof — a
 * database trigger that records every deferred → scheduled transition — that no task resumed twice.
 */
export const failover: Scenario = {
  name: 'failover',
  title: 'one of two triggerers SIGKILLed: takeover time, and no task resumed twice',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 200 : 10_000;
    const thresholdS = context.smoke ? 2 : 5;
    const db = await openBenchDatabase('failover', context.adminUrl);
    const resumes = await installResumeAudit(db.database);
    const common = ['--triggers-folder', BENCH_TRIGGERS, '--health-check-threshold', String(thresholdS), '--heartbeat-interval', '1'];
    const victim = DaemonProcess.spawn('triggerer', db.url, [...common, '--capacity', String(size / 2)]);
    const survivor = DaemonProcess.spawn('triggerer', db.url, [...common, '--capacity', String(size)]);
    try {
      const victimJob = await victim.ready(db.database);
      const survivorJob = await survivor.ready(db.database);
      // Due after the takeover: the survivor fires them on time; none may fire twice.
      const start = DateTime.utc().plus({ seconds: thresholdS + (context.smoke ? 3 : 6) });
      await seedDeferred(db.database, {
        dagId: 'failover',
        layout: { kind: 'one-run', runId: 'failover' },
        classpath: 'tsflow.triggers.DateTimeTrigger',
        kwargs: Array.from({ length: size }, (_, i) => ({ moment: start.plus({ milliseconds: Math.round((i * 4000) / size) }).toISO() as string })),
      });
      await until(async () => (await countTriggers(db.database, null)) === 0, 'all claimed', 60_000, 50);
      const held = await countTriggers(db.database, victimJob);
      context.log(`failover ${size}: the victim holds ${held}, the survivor ${await countTriggers(db.database, survivorJob)}; SIGKILL`);
      const killedAt = Date.now();
      await victim.stop('SIGKILL');
      await until(async () => (await countTriggers(db.database, victimJob)) === 0, "the victim's triggers to move", 60_000, 25);
      const takeoverMs = Date.now() - killedAt;
      await untilAllResumed(db.database, size, 120_000, 200);
      const counts = await resumes();
      const twice = [...counts.values()].filter((n) => n > 1).length;
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM task_instance WHERE state = 'deferred'`.execute(db.database.db);
      return [
        {
          scenario: 'failover',
          title: `two triggerers hold ${size.toLocaleString('en')} triggers; one is SIGKILLed`,
          settings: { triggers: size, heldByVictim: held, healthCheckThresholdS: thresholdS, heartbeatIntervalS: 1 },
          figures: { takeoverMs, resumedTwice: twice, resumedOnce: [...counts.values()].filter((n) => n === 1).length, stillDeferred: rows[0]?.n ?? 0 },
          targets: context.smoke
            ? []
            : [
                { what: 'tasks resumed twice', target: '0', actual: String(twice), met: twice === 0 },
                { what: 'takeover after SIGKILL', target: `≤ threshold + heartbeat (${thresholdS + 1} s)`, actual: `${(takeoverMs / 1000).toFixed(1)} s`, met: takeoverMs <= (thresholdS + 1) * 1000 },
              ],
          server: serverInfo(db),
        },
      ];
    } finally {
      await victim.stop('SIGKILL');
      await survivor.stop();
      await db.close();
    }
  },
};
