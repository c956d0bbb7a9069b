import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import { sql } from 'kysely';
import { createDagRun } from '../../src/db/dag-runs.ts';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { countTriggers, seedDeferred, until } from '../lib/seed.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_DAGS, BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * Resume end to end: N deferred tasks whose DateTimeTriggers fall due uniformly over 10 s, resumed
 * through a triggerer process and a scheduler process with its LocalExecutor. Time from each
 * trigger's due moment to the start of `executeComplete` (which the task records in its XCom).
 */
export const resume: Scenario = {
  name: 'resume',
  title: 'due moment → executeComplete starting, through scheduler + LocalExecutor',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 20 : 1000;
    const windowMs = context.smoke ? 2000 : 10_000;
    const parallelism = 32;
    const db = await openBenchDatabase('resume', context.adminUrl);
    const home = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bench-home-'));
    const env = { TSFLOW_HOME: home, TSFLOW_LOGS_FOLDER: path.join(home, 'logs') };
    const triggerer = DaemonProcess.spawn('triggerer', db.url, ['--capacity', String(size), '--triggers-folder', BENCH_TRIGGERS], env);
    const scheduler = DaemonProcess.spawn('scheduler', db.url, ['--dags-folder', BENCH_DAGS, '--executor', 'local', '--parallelism', String(parallelism)], env);
    try {
      const jobId = await triggerer.ready(db.database);
      await scheduler.ready(db.database);
      // Warm the executor's worker processes first, as in a deployment that has been running.
      await createDagRun(db.database.db, { dagId: 'warm_up', runId: 'warm_up', conf: {}, logicalDate: new Date() });
      await until(async () => (await db.database.db.selectFrom('dag_run').select('state').where('run_id', '=', 'warm_up').executeTakeFirst())?.state === 'success', 'the warm-up run', 60_000, 50);
      const start = DateTime.utc().plus({ seconds: 3 });
      const step = windowMs / size;
      const moments = Array.from({ length: size }, (_, i) => start.plus({ milliseconds: Math.round(i * step) }));
      await seedDeferred(db.database, {
        dagId: 'resume_bench',
        layout: { kind: 'run-per-task', runPrefix: 'r', taskId: 'wait' },
        classpath: 'tsflow.triggers.DateTimeTrigger',
        kwargs: moments.map((m) => ({ moment: m.toISO() as string })),
      });
      await until(async () => (await countTriggers(db.database, jobId)) === size, 'all claimed', 30_000, 50);
      context.log(`resume ${size}: claimed; due from ${start.toISOTime()} over ${windowMs / 1000} s`);
      const done = () => sql<{ n: number }>`SELECT count(*)::int AS n FROM dag_run WHERE dag_id = 'resume_bench' AND state IN ('success', 'failed')`.execute(db.database.db);
      await until(async () => ((await done()).rows[0]?.n ?? 0) === size, 'every run to finish', windowMs + 120_000, 200);
      const { rows } = await sql<{ run_id: string; started_at: number | null; state: string }>`
        SELECT ti.run_id, (x.value ->> 'startedAt')::float8 AS started_at, ti.state
        FROM task_instance ti LEFT JOIN xcom x ON x.dag_id = ti.dag_id AND x.run_id = ti.run_id AND x.task_id = ti.task_id AND x.key = 'return_value'
        WHERE ti.dag_id = 'resume_bench'`.execute(db.database.db);
      const failed = rows.filter((r) => r.state !== 'success' || r.started_at === null).length;
      const samples = rows.filter((r) => r.started_at !== null).map((r) => (r.started_at as number) - (moments[Number(r.run_id.slice(1))] as DateTime).toMillis());
      const s = summarise(samples);
      return [
        {
          scenario: 'resume',
          title: `${size.toLocaleString('en')} deferred tasks due over ${windowMs / 1000} s, resumed through scheduler + LocalExecutor`,
          settings: { tasks: size, windowMs, executor: 'local', parallelism, failedTasks: failed },
          figures: { resumeP50Ms: s.p50, resumeP99Ms: s.p99, resumeMaxMs: s.max, resumeMinMs: s.min },
          targets: context.smoke ? [] : [target('due → executeComplete p99', '100 ms', s.p99, 100)],
          server: serverInfo(db),
        },
      ];
    } finally {
      await scheduler.stop();
      await triggerer.stop();
      await db.close();
      await rm(home, { recursive: true, force: true });
    }
  },
};
