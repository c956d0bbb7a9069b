import { sql } from 'kysely';
import { openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { freePort, scrape } from '../lib/metrics-scrape.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { seedDeferred, untilAllResumed, until } from '../lib/seed.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * External events (issue 17): N tasks deferred on `ExternalEventTrigger`s held by one triggerer
 * process; then either one event wakes all N (one key), or one transaction sends N events, one per
 * key (N keys). Latency per task = the event row's `created_at` → the task instance's resume write
 * (`scheduled_at`), both on the database clock: the triggerer's part of event → `executeComplete`
 * (the scheduler's pick-up and the worker's start come after, measured by `pickup`).
 */
export const events: Scenario = {
  name: 'events',
  title: 'external events: one key with N waiters, N keys with one waiter each',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const results: ScenarioResult[] = [];
    const oneKey = context.smoke ? 50 : 1000;
    const manyKeys = context.smoke ? 100 : 10_000;
    for (const [mode, size] of [['one-key', oneKey], ['many-keys', manyKeys]] as const) {
      const db = await openBenchDatabase(`events_${mode.replace('-', '_')}`, context.adminUrl);
      const port = await freePort();
      const triggerer = DaemonProcess.spawn('triggerer', db.url, ['--capacity', String(size), '--triggers-folder', BENCH_TRIGGERS, '--metrics-port', String(port)]);
      try {
        await triggerer.ready(db.database);
        const notBefore = new Date().toISOString();
        const keyOf = (i: number): string => (mode === 'one-key' ? 'bench-event' : `bench-event-${i}`);
        await seedDeferred(db.database, {
          dagId: `events_${mode}`,
          layout: { kind: 'one-run', runId: 'events' },
          classpath: 'tsflow.triggers.ExternalEventTrigger',
          kwargs: Array.from({ length: size }, (_, i) => ({ key: keyOf(i), match: [], notBefore })),
        });
        await until(async () => (await scrape(port, 'tsflow_triggerer_triggers_running')) === size, 'all waits running', 120_000, 50);
        await new Promise((r) => setTimeout(r, context.smoke ? 300 : 2000)); // each wait's first look back is done
        if (mode === 'one-key') await sql`SELECT tsflow_send_event('bench-event', '{"n": 1}')`.execute(db.database.db);
        else await sql`SELECT tsflow_send_event('bench-event-' || g, jsonb_build_object('n', g)) FROM generate_series(0, ${size - 1}::int) g`.execute(db.database.db);
        await untilAllResumed(db.database, size, 120_000, 20);
        const latencies = await eventToResume(db);
        const s = summarise(latencies);
        context.log(`events ${mode} ${size}: event → resume p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, max ${s.max.toFixed(1)} ms`);
        results.push({
          scenario: `events-${mode}`,
          title: mode === 'one-key' ? `one event waking ${size.toLocaleString('en')} waiters of its key` : `${size.toLocaleString('en')} events in one transaction, one waiter per key`,
          settings: { waiters: size, keys: mode === 'one-key' ? 1 : size },
          figures: { eventToResumeP50Ms: s.p50, eventToResumeP99Ms: s.p99, eventToResumeMaxMs: s.max },
          targets: context.smoke ? [] : [target('event → resume p99', '100 ms', s.p99, 100)],
          server: serverInfo(db),
        });
      } finally {
        await triggerer.stop();
        await db.close();
      }
    }
    return results;
  },
};

/** Per resumed task: its event's insert → its resume write, in ms (database clock). */
async function eventToResume(db: BenchDatabase): Promise<number[]> {
  const { rows } = await sql<{ ms: number }>`
    SELECT (extract(epoch FROM ti.scheduled_at - e.created_at) * 1000)::float8 AS ms
    FROM task_instance ti JOIN event e ON e.id = (ti.next_kwargs -> 'event' ->> 'eventId')::bigint`.execute(db.database.db);
  return rows.map((r) => r.ms);
}
