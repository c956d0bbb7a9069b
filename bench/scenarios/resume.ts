import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import { sql } from 'kysely';
import { createDagRun } from '../../src/db/dag-runs.ts';
import { openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { startTsflowWorkers, type ExecutorKind } from '../lib/executors.ts';
import { installPickupAudit, readPickups, span } from '../lib/pickup-audit.ts';
import { installResumeAudit } from '../lib/resume-audit.ts';
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
    try {
      const { samples, failed } = await measureResume(db, context, { executor: 'local', size, windowMs, parallelism, runPrefix: 'r' });
      const s = summarise(samples.map((x) => x.total));
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
      await db.close();
    }
  },
};

export interface ResumeOptions {
  executor: ExecutorKind;
  size: number;
  windowMs: number;
  /** The scheduler's --parallelism; with the graphile executor, also the one worker's --concurrency. */
  parallelism: number;
  /** Run ids are this and the task's number: several measurements can share a database. */
  runPrefix: string;
}

/** One resumed task: due moment → executeComplete starting, and the stages between (ms; null: not measured). */
export interface ResumeSample {
  total: number;
  /** due → the event's write (deferred → scheduled, by the triggerer). */
  dueToScheduled: number | null;
  /** scheduled → queued (the scheduler's enqueue). */
  scheduledToQueued: number | null;
  /** queued → executeComplete starting (the executor's hand-over, the runner's resume). */
  queuedToStarted: number | null;
  /** Graphile executor: queued → the job locked by the worker's getJob (enqueue commit, NOTIFY, getJob). */
  queuedToLocked: number | null;
  /** Graphile executor: locked → executeComplete starting (the handler, a warm task process's claiming start write, the resume). */
  lockedToStarted: number | null;
}

/**
 * N deferred tasks (`resume_bench.wait`, one run each) whose DateTimeTriggers fall due uniformly
 * over `windowMs`, resumed through a triggerer process and a scheduler process with the given
 * executor (graphile: plus one `tsflow worker` process); each sample is the time from its due
 * moment to the start of `executeComplete` (which the task records in its XCom).
 */
export async function measureResume(db: BenchDatabase, context: ScenarioContext, options: ResumeOptions): Promise<{ samples: ResumeSample[]; failed: number }> {
  const { size, windowMs, parallelism, runPrefix } = options;
  const home = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bench-home-'));
  const env = { TSFLOW_HOME: home, TSFLOW_LOGS_FOLDER: path.join(home, 'logs') };
  await installResumeAudit(db.database);
  await installPickupAudit(db.database);
  const triggerer = DaemonProcess.spawn('triggerer', db.url, ['--capacity', String(size), '--triggers-folder', BENCH_TRIGGERS], env);
  const scheduler = DaemonProcess.spawn('scheduler', db.url, ['--dags-folder', BENCH_DAGS, '--executor', options.executor, '--parallelism', String(parallelism)], env);
  let stopWorkers = (): Promise<void> => Promise.resolve();
  try {
    if (options.executor === 'graphile') stopWorkers = await startTsflowWorkers(db.database, 1, parallelism);
    const jobId = await triggerer.ready(db.database);
    await scheduler.ready(db.database);
    // Warm the executor's task processes first, as in a deployment that has been running.
    const warmId = `warm_up_${runPrefix}`;
    await createDagRun(db.database.db, { dagId: 'warm_up', runId: warmId, conf: {}, logicalDate: new Date() });
    await until(async () => (await db.database.db.selectFrom('dag_run').select('state').where('run_id', '=', warmId).executeTakeFirst())?.state === 'success', 'the warm-up run', 60_000, 50);
    const before = await countTriggers(db.database, jobId);
    const start = DateTime.utc().plus({ seconds: 3 });
    const step = windowMs / size;
    const moments = Array.from({ length: size }, (_, i) => start.plus({ milliseconds: Math.round(i * step) }));
    await seedDeferred(db.database, {
      dagId: 'resume_bench',
      layout: { kind: 'run-per-task', runPrefix, taskId: 'wait' },
      classpath: 'tsflow.triggers.DateTimeTrigger',
      kwargs: moments.map((m) => ({ moment: m.toISO() as string })),
    });
    await until(async () => (await countTriggers(db.database, jobId)) - before === size, 'all claimed', 30_000, 50);
    context.log(`resume ${size} (${options.executor}): claimed; due from ${start.toISOTime()} over ${windowMs / 1000} s`);
    const done = () => sql<{ n: number }>`SELECT count(*)::int AS n FROM dag_run WHERE dag_id = 'resume_bench' AND starts_with(run_id, ${runPrefix}) AND state IN ('success', 'failed')`.execute(db.database.db);
    await until(async () => ((await done()).rows[0]?.n ?? 0) === size, 'every run to finish', windowMs + 120_000, 200);
    const { rows } = await sql<{ run_id: string; started_at: number | null; state: string; scheduled_at: number | null; queued_at: number | null }>`
      SELECT ti.run_id, (x.value ->> 'startedAt')::float8 AS started_at, ti.state,
        (SELECT (extract(epoch FROM l.at) * 1000)::float8 FROM resume_log l WHERE l.run_id = ti.run_id AND l.task_id = ti.task_id ORDER BY l.at LIMIT 1) AS scheduled_at,
        (extract(epoch FROM ti.queued_at) * 1000)::float8 AS queued_at
      FROM task_instance ti LEFT JOIN xcom x ON x.dag_id = ti.dag_id AND x.run_id = ti.run_id AND x.task_id = ti.task_id AND x.key = 'return_value'
      WHERE ti.dag_id = 'resume_bench' AND starts_with(ti.run_id, ${runPrefix})`.execute(db.database.db);
    const pickups = new Map((await readPickups(db.database, 'resume_bench', runPrefix, false)).map((p) => [p.runId, p]));
    const failed = rows.filter((r) => r.state !== 'success' || r.started_at === null).length;
    const samples = rows
      .filter((r) => r.started_at !== null)
      .map((r) => {
        const due = (moments[Number(r.run_id.slice(runPrefix.length))] as DateTime).toMillis();
        const startedAt = r.started_at as number;
        const pickup = pickups.get(r.run_id);
        return {
          queuedToLocked: span(r.queued_at, pickup?.locked ?? null),
          lockedToStarted: span(pickup?.locked ?? null, startedAt),
          total: startedAt - due,
          dueToScheduled: r.scheduled_at === null ? null : r.scheduled_at - due,
          scheduledToQueued: r.scheduled_at === null || r.queued_at === null ? null : r.queued_at - r.scheduled_at,
          queuedToStarted: r.queued_at === null ? null : startedAt - r.queued_at,
        };
      });
    return { samples, failed };
  } finally {
    await scheduler.stop();
    await stopWorkers();
    await triggerer.stop();
    await rm(home, { recursive: true, force: true });
  }
}
