import { sql } from 'kysely';
import { openDatabase } from '../../src/db/database.ts';
import { submitTriggerOutcomes } from '../../src/db/triggers.ts';
import { openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { processCpuSeconds } from '../lib/pg-cpu.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { seedDeferred } from '../lib/seed.ts';
import { summarise } from '../lib/stats.ts';

/** Rolled back after each write, so every sample meets the same table. */
class Rollback extends Error {}

/**
 * Event write: the cost of one `submitTriggerOutcomes` statement by batch size and by waits held —
 * N task instances deferred on triggers one triggerer owns, analysed as autovacuum would have. Each
 * write runs in a transaction that is rolled back, on one connection; the figures are the
 * statement's time from the client and its backend's CPU (from /proc, summed over the samples, so
 * it includes BEGIN and ROLLBACK). Its cost should follow the batch, not what is held.
 */
export const eventWrite: Scenario = {
  name: 'event-write',
  title: 'event-write statement cost by batch size and waits held',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const heldSizes = context.smoke ? [100, 1000] : [1000, 10_000, 100_000];
    const results: ScenarioResult[] = [];
    for (const held of heldSizes) {
      const db = await openBenchDatabase(`event_write_${held}`, context.adminUrl);
      try {
        results.push(await measure(db, held, context));
      } finally {
        await db.close();
      }
    }
    return results;
  },
};

async function measure(db: BenchDatabase, held: number, context: ScenarioContext): Promise<ScenarioResult> {
  const moment = new Date(Date.now() + 3_600_000).toISOString();
  await seedDeferred(db.database, {
    dagId: 'held',
    layout: { kind: 'one-run', runId: 'held' },
    classpath: 'tsflow.triggers.DateTimeTrigger',
    kwargs: Array.from({ length: held }, () => ({ moment })),
    notify: false,
  });
  const jobId = (await sql<{ id: number }>`INSERT INTO job (job_type, hostname, pid, state) VALUES ('triggerer', 'bench', 0, 'running') RETURNING id`.execute(db.database.db)).rows[0]!.id;
  await sql`UPDATE trigger SET triggerer_id = ${jobId}`.execute(db.database.db);
  await sql`VACUUM ANALYZE trigger, task_instance`.execute(db.database.db);
  const ids = (await sql<{ id: number }>`SELECT id FROM trigger ORDER BY id`.execute(db.database.db)).rows.map((r) => Number(r.id));

  const writer = openDatabase({ url: db.url, poolSize: 1, applicationName: 'tsflow-bench-writer' });
  try {
    const backend = (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(writer.db)).rows[0]!.pid;
    const figures: Record<string, number> = {};
    const batches = [1, 1000, 5000].filter((b) => b <= held);
    for (const batch of batches) {
      const reps = context.smoke ? 3 : batch === 1 ? 300 : batch === 1000 ? 30 : 10;
      const times: number[] = [];
      let offset = 0;
      const cpuBefore = (await processCpuSeconds(backend)) ?? Number.NaN;
      for (let rep = 0; rep < reps + 3; rep++) {
        const slice = ids.slice(offset, offset + batch);
        offset = (offset + batch) % Math.max(1, held - batch);
        const outcomes = slice.map((triggerId) => ({ triggerId, kind: 'event' as const, payload: { moment } }));
        await writer.db
          .transaction()
          .execute(async (trx) => {
            const started = performance.now();
            const result = await submitTriggerOutcomes(trx, jobId, outcomes);
            if (rep >= 3) times.push(performance.now() - started); // the first three warm the connection's caches
            if (result.resumed !== batch) throw new Error(`resumed ${result.resumed} of ${batch}`);
            throw new Rollback();
          })
          .catch((error: unknown) => {
            if (!(error instanceof Rollback)) throw error;
          });
      }
      const cpu = ((await processCpuSeconds(backend)) ?? Number.NaN) - cpuBefore;
      const s = summarise(times);
      figures[`batch${batch}P50Ms`] = s.p50;
      figures[`batch${batch}P90Ms`] = s.p90;
      figures[`batch${batch}BackendCpuPerStatementUs`] = (cpu / (reps + 3)) * 1e6;
      figures[`batch${batch}PerEventUs`] = (s.p50 / batch) * 1000;
    }
    context.log(`event-write: ${held} held measured`);
    return {
      scenario: 'event-write',
      title: `one submitTriggerOutcomes statement, ${held.toLocaleString('en')} waits held (rolled back after each)`,
      settings: { held, batches: batches.join('/'), connection: 'one, its backend CPU from /proc' },
      figures,
      targets: context.smoke ? [] : [target(`1 event with ${held.toLocaleString('en')} held, p50`, '2 ms', figures['batch1P50Ms'] as number, 2)],
      server: serverInfo(db),
    };
  } finally {
    await writer.close();
  }
}
