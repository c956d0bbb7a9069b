import os from 'node:os';
import { sql } from 'kysely';
import { silentLogger } from '../../src/common/logger.ts';
import { DagBag } from '../../src/dag-bag/dag-bag.ts';
import { createDagRun, upsertDags } from '../../src/db/dag-runs.ts';
import { startQueuedRun } from '../../src/db/scheduling.ts';
import { runTaskInstance } from '../../src/runner/task-runner.ts';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { until } from '../lib/seed.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_DAGS, BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * Pickup: one task defers, again and again, through the real runner (as a worker would); each time,
 * the time from the defer transaction's commit to the trigger starting to run in a triggerer
 * process (the moment the trigger stamps into its event).
 */
export const pickup: Scenario = {
  name: 'pickup',
  title: 'defer commit → trigger running',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const rounds = context.smoke ? 5 : 200;
    const db = await openBenchDatabase('pickup', context.adminUrl);
    const triggerer = DaemonProcess.spawn('triggerer', db.url, ['--triggers-folder', BENCH_TRIGGERS]);
    try {
      await triggerer.ready(db.database);
      const bag = await DagBag.load(BENCH_DAGS);
      const dag = bag.getDag('pickup_bench');
      const key = { dagId: 'pickup_bench', runId: 'pickup', taskId: 'probe' };
      await upsertDags(db.database.db, [{ dagId: dag.dagId, fileloc: dag.fileloc ?? '' }]);
      await createDagRun(db.database.db, { dagId: key.dagId, runId: key.runId, conf: {}, logicalDate: new Date() });
      await startQueuedRun(db.database.db, key.dagId, key.runId, [{ taskId: 'probe', maxTries: 0, priorityWeight: 1, queue: 'default' }], { checkLimits: false });
      const deps = { db: db.database.db, logger: silentLogger(), hostname: os.hostname(), pid: process.pid, defaults: { deferrable: false } };
      const samples: number[] = [];
      for (let round = 0; round < rounds; round++) {
        await sql`UPDATE task_instance SET state = 'queued', next_method = NULL, next_kwargs = NULL WHERE run_id = ${key.runId}`.execute(db.database.db);
        const result = await runTaskInstance(deps, dag, key);
        if (result.state !== 'deferred') throw new Error(`the probe did not defer: ${result.state} ${result.error ?? ''}`);
        // The task instance row still carries the defer transaction (the trigger fires 150 ms later).
        const committed = db.commitTimestamps
          ? (await sql<{ at: number }>`SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::float8 AS at FROM task_instance WHERE run_id = ${key.runId}`.execute(db.database.db)).rows[0]?.at
          : Date.now();
        let startedAt: number | undefined;
        await until(async () => {
          const row = await db.database.db.selectFrom('task_instance').select(['state', 'next_kwargs']).where('run_id', '=', key.runId).executeTakeFirstOrThrow();
          const event = row.next_kwargs?.['event'] as { startedAt?: number } | undefined;
          startedAt = event?.startedAt;
          return row.state === 'scheduled';
        }, 'the trigger to fire', 10_000, 2);
        samples.push((startedAt as number) - (committed as number));
      }
      const s = summarise(samples);
      return [
        {
          scenario: 'pickup',
          title: `one task defers ${rounds} times in sequence: defer commit → trigger running`,
          settings: { rounds, triggerers: 1, commitTime: db.commitTimestamps ? 'pg_xact_commit_timestamp' : 'client clock after COMMIT' },
          figures: { pickupP50Ms: s.p50, pickupP99Ms: s.p99, pickupMaxMs: s.max, pickupMinMs: s.min },
          targets: context.smoke ? [] : [target('pickup p99', '5 ms', s.p99, 5)],
          server: serverInfo(db),
        },
      ];
    } finally {
      await triggerer.stop();
      await db.close();
    }
  },
};
