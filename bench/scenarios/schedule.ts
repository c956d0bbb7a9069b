import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sql } from 'kysely';
import { silentLogger } from '../../src/common/logger.ts';
import { DagBag } from '../../src/dag-bag/dag-bag.ts';
import { serializeDag } from '../../src/dag-bag/serialized-dag.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { Notifier } from '../../src/db/notifier.ts';
import { Channels } from '../../src/db/protocol.ts';
import { recordDags } from '../../src/db/serialized-dags.ts';
import { LocalExecutor } from '../../src/executors/local-executor.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { QueryTimeline, type TimedQuery } from '../lib/query-timeline.ts';
import { installRunCreatedAudit } from '../lib/run-created-audit.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { summarise } from '../lib/stats.ts';

const SDK = pathToFileURL(path.resolve(import.meta.dirname, '../../src/sdk/index.ts')).href;
const DAGS_PER_FILE = 10;
const PARALLELISM = 8;

interface Plan {
  dags: number;
  cron: string;
  periodMs: number;
  /** Due moments measured, after the first run (created late, at start, as catchup=false does) and its tasks have finished. */
  moments: number;
  /** Gap between the warm-up finishing and the first measured due moment, at least. */
  marginMs: number;
  /** How long after the last due moment the driver keeps looking for runs before counting missing ones. */
  settleMs: number;
}

/**
 * Schedule: N DAGs on one cron, each with one no-op task, loaded from generated DAG files and
 * recorded in `serialized_dag`; one or two in-process schedulers (LocalExecutor each) create their
 * runs. Lateness of each run = the commit of the transaction that inserted it
 * (`pg_xact_commit_timestamp`, read from an audit row that transaction wrote: see run-created-audit.ts)
 * minus its due moment (`data_interval_end`, when Airflow's data-interval semantics make it due).
 */
export const schedule: Scenario = {
  name: 'schedule',
  title: 'scheduled run creation: row commit − data_interval_end, one and two schedulers',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const plan: Plan = context.smoke
      ? { dags: 5, cron: '*/2 * * * * *', periodMs: 2000, moments: 2, marginMs: 500, settleMs: 3000 }
      : { dags: 1000, cron: '* * * * *', periodMs: 60_000, moments: 3, marginMs: 5000, settleMs: 10_000 };
    const results: ScenarioResult[] = [];
    for (const schedulers of [1, 2]) results.push(await runVariant(context, plan, schedulers));
    return results;
  },
};

interface Running {
  label: string;
  database: Database;
  timeline: QueryTimeline;
  notifier: Notifier;
  scheduler: Scheduler;
  /** `run:created` events: `dag_id\0run_id`. */
  created: Set<string>;
}

async function runVariant(context: ScenarioContext, plan: Plan, schedulers: number): Promise<ScenarioResult> {
  const db = await openBenchDatabase(`schedule${schedulers}`, context.adminUrl);
  const folder = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bench-schedule-dags-'));
  const running: Running[] = [];
  try {
    const startDate = new Date(Date.now() - 3600_000).toISOString();
    await writeDagFiles(folder, plan, startDate);
    const bag = await DagBag.load(folder);
    if (bag.importErrors.size > 0 || bag.dags.size !== plan.dags) {
      throw new Error(`generated DAGs: ${bag.dags.size} of ${plan.dags} loaded; ${[...bag.importErrors.values()].map((e) => e.message).join('; ')}`);
    }
    await installRunCreatedAudit(db.database);
    // As a DAG processor would: their rows and serialized forms, and each one's next run.
    await recordDags(db.database.db, [...bag.dags.values()].map((dag) => serializeDag(dag, dag.fileloc ?? '')));
    for (let i = 0; i < schedulers; i++) running.push(await startScheduler(db, folder, String.fromCharCode(65 + i)));
    // catchup=false: each DAG's latest interval is already over, so its run is created at once, late;
    // it and its task are the warm-up (JIT, worker processes). Measured: the next due moments.
    const warmStart = Date.now();
    const warm = await waitFor(async () => (await countRuns(db, sql`state IN ('success', 'failed')`)) >= plan.dags, 180_000);
    if (!warm) throw new Error(`warm-up: the first ${plan.dags} runs did not all finish in 180 s`);
    const first = Math.ceil((Date.now() + plan.marginMs) / plan.periodMs) * plan.periodMs;
    const moments = Array.from({ length: plan.moments }, (_, k) => first + k * plan.periodMs);
    const last = moments[moments.length - 1] as number;
    context.log(
      `schedule ×${schedulers}: ${plan.dags} DAGs warm after ${((Date.now() - warmStart) / 1000).toFixed(1)} s; ` +
        `measuring ${moments.map((m) => new Date(m).toISOString().slice(11, 19)).join(', ')}`,
    );
    const expected = plan.dags * plan.moments;
    await sleepUntil(last);
    await waitFor(async () => (await countRuns(db, sql`data_interval_end = ANY(${moments.map((m) => new Date(m))}::timestamptz[])`)) >= expected, plan.settleMs);
    const stopped = running.splice(0);
    for (const r of [...stopped].reverse()) await stopScheduler(r);
    return await report(context, db, plan, moments, stopped);
  } finally {
    for (const r of running.reverse()) await stopScheduler(r).catch(() => undefined);
    await db.close();
    await rm(folder, { recursive: true, force: true });
  }
}

/** A scheduler as `tsflow scheduler --executor local` builds it, in this process, on a pool of its own. */
async function startScheduler(db: BenchDatabase, folder: string, label: string): Promise<Running> {
  const database = openDatabase({ url: db.url, poolSize: 10, keepOpen: 3, applicationName: `tsflow-scheduler-${label}` });
  const timeline = new QueryTimeline(database.pool);
  await database.warm();
  const notifier = new Notifier({ url: db.url, channels: [Channels.trigger, Channels.ti, Channels.dag], logger: silentLogger() });
  await notifier.start();
  const executor = new LocalExecutor({
    parallelism: PARALLELISM,
    logger: silentLogger(),
    worker: { databaseUrl: db.url, dagsFolder: folder, logLevel: 'silent', defaultDeferrable: false },
  });
  // No dagBag: the scheduler works from serialized_dag only, as with a DAG processor.
  const scheduler = new Scheduler({ database, executor, logger: silentLogger(), notifier });
  const created = new Set<string>();
  scheduler.on('run:created', (run) => created.add(`${run.dagId}\0${run.runId}`));
  const entry = { label, database, timeline, notifier, scheduler, created };
  try {
    await scheduler.start();
  } catch (error) {
    await stopScheduler(entry).catch(() => undefined);
    throw error;
  }
  return entry;
}

async function stopScheduler(r: Running): Promise<void> {
  await r.scheduler.stop();
  await r.notifier.stop();
  await r.database.close();
}

async function report(context: ScenarioContext, db: BenchDatabase, plan: Plan, moments: number[], schedulers: Running[]): Promise<ScenarioResult> {
  // The creation's commit, from the audit row written in the creating transaction (the run's own
  // row is updated when it starts and ends). Without commit timestamps (the test server in smoke
  // mode): the run's created_at, its transaction's start.
  const committed = db.commitTimestamps ? sql`pg_xact_commit_timestamp(l.xmin)` : sql`r.created_at`;
  const { rows } = await sql<{ dag_id: string; run_id: string; due: number; at: number; tx: string }>`
    SELECT r.dag_id, r.run_id, (extract(epoch FROM r.data_interval_end) * 1000)::float8 AS due,
           (extract(epoch FROM ${committed}) * 1000)::float8 AS at, l.xmin::text AS tx
    FROM dag_run r JOIN run_created_log l ON l.dag_id = r.dag_id AND l.run_id = r.run_id
    WHERE r.run_type = 'scheduled' AND r.data_interval_end = ANY(${moments.map((m) => new Date(m))}::timestamptz[])`.execute(db.database.db);
  const { rows: dup } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM (SELECT 1 FROM dag_run GROUP BY dag_id, logical_date HAVING count(*) > 1) d`.execute(db.database.db);
  const duplicates = dup[0]?.n ?? 0;
  const distinct = new Set(rows.map((r) => `${r.dag_id}\0${r.due}`)).size;
  const missing = plan.dags * plan.moments - distinct;
  const s = summarise(rows.map((r) => r.at - r.due));
  const figures: Record<string, number> = {
    runsCreated: rows.length,
    duplicates,
    missing,
    latenessP50Ms: s.p50,
    latenessP99Ms: s.p99,
    latenessMaxMs: s.max,
    latenessMinMs: s.min,
  };
  moments.forEach((m, k) => {
    const batch = rows.filter((r) => r.due === m);
    figures[`batch${k + 1}Ms`] = batch.length === 0 ? Number.NaN : Math.max(...batch.map((r) => r.at)) - m;
    figures[`batch${k + 1}Transactions`] = new Set(batch.map((r) => r.tx)).size;
  });
  const measured = new Set(rows.map((r) => `${r.dag_id}\0${r.run_id}`));
  for (const r of schedulers) {
    figures[`createdBy${r.label}`] = [...r.created].filter((key) => measured.has(key)).length;
  }
  // Where the time goes, per due moment, from each scheduler's own statements.
  const wake: number[] = [];
  const lock: number[] = [];
  const commit: number[] = [];
  const compute: number[] = [];
  for (const m of moments) {
    for (const r of schedulers) {
      const t = creationTimeline(r.timeline, m, plan.periodMs);
      if (!t) continue;
      wake.push(t.wakeMs);
      lock.push(t.lockMs);
      commit.push(t.commitMs);
      compute.push(t.computeMs);
      context.log(`${new Date(m).toISOString().slice(11, 19)} scheduler ${r.label}: ${t.rows} DAGs locked; ${t.steps}`);
    }
  }
  Object.assign(figures, {
    firstQueryMaxMs: Math.max(...wake),
    lockStartMaxMs: Math.max(...lock),
    nextRunsComputeMaxMs: Math.max(...compute),
    commitReturnedMaxMs: Math.max(...commit),
  });
  const n = schedulers.length;
  return {
    scenario: n === 1 ? 'schedule' : `schedule-${n}`,
    title: `${plan.dags.toLocaleString('en')} DAGs on '${plan.cron}' (UTC), ${plan.moments} due moments, ${n === 1 ? 'one scheduler' : `${n} schedulers`}: run commit − data_interval_end`,
    settings: {
      dags: plan.dags,
      dagFiles: Math.ceil(plan.dags / DAGS_PER_FILE),
      schedule: plan.cron,
      dueMoments: plan.moments,
      schedulers: n,
      schedulerProcess: 'in-process Scheduler, pool of its own',
      executor: 'local',
      parallelism: PARALLELISM,
    },
    figures,
    targets: context.smoke ? [] : [target('lateness p99 (commit − data_interval_end)', '50 ms', s.p99, 50)],
    server: serverInfo(db),
  };
}

/**
 * The scheduler's statements around one due moment: its first statement at or after it (the pass
 * the timer woke), the `createDueRuns` lock that found due DAGs, and that transaction's COMMIT
 * returning; each in ms after the due moment, and the statements between, for the log.
 */
function creationTimeline(timeline: QueryTimeline, dueMs: number, periodMs: number): { rows: number; wakeMs: number; lockMs: number; commitMs: number; computeMs: number; steps: string } | undefined {
  const window = timeline.between(dueMs - 5, dueMs + Math.min(periodMs, 30_000) - 5);
  // The lock: `SELECT d.dag_id, statement_timestamp() AS now, … FROM dag d … FOR UPDATE OF d SKIP LOCKED`.
  const lockAt = window.findIndex((q) => q.text.includes('statement_timestamp() AS now') && (q.rows ?? 0) > 0);
  if (lockAt < 0) return undefined;
  const lockQ = window[lockAt] as TimedQuery;
  const commitQ = window.slice(lockAt + 1).find((q) => q.client === lockQ.client && /^commit/i.test(q.text));
  const firstQ = window.find((q) => q.startMs >= dueMs) ?? lockQ;
  const until = commitQ?.endMs ?? lockQ.endMs;
  const span = window.filter((q) => q.startMs >= firstQ.startMs && q.startMs <= until);
  const shown = span.length <= 20 ? span : [...span.slice(0, 5), undefined, ...span.slice(-12)];
  const steps = shown
    .map((q) => (q ? `+${(q.startMs - dueMs).toFixed(1)} [c${q.client}] ${q.text.slice(0, 48)} (${(q.endMs - q.startMs).toFixed(1)} ms)` : '…'))
    .join(' | ');
  // The transaction's client-side gap: from the last read to the INSERT (the fast path only reads the
  // stored runs; DAGs on the timetable path compute their next runs here).
  const tx = window.filter((q) => q.client === lockQ.client && q.startMs >= lockQ.startMs && q.startMs <= until);
  const insertAt = tx.findIndex((q) => q.text.startsWith('INSERT INTO dag_run'));
  const computeMs = insertAt > 0 ? (tx[insertAt] as TimedQuery).startMs - (tx[insertAt - 1] as TimedQuery).endMs : Number.NaN;
  return { rows: lockQ.rows ?? 0, wakeMs: firstQ.startMs - dueMs, lockMs: lockQ.startMs - dueMs, commitMs: until - dueMs, computeMs, steps };
}

async function countRuns(db: BenchDatabase, where: ReturnType<typeof sql>): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM dag_run WHERE run_type = 'scheduled' AND ${where}`.execute(db.database.db);
  return rows[0]?.n ?? 0;
}

/** Polls `done` every 100 ms until it holds (true) or `timeoutMs` passes (false). */
async function waitFor(done: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function sleepUntil(epochMs: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, epochMs - Date.now())));
}

async function writeDagFiles(folder: string, plan: Plan, startDate: string): Promise<void> {
  await writeFile(path.join(folder, 'package.json'), '{ "type": "module" }\n');
  for (let file = 0; file * DAGS_PER_FILE < plan.dags; file++) {
    const lines = [
      `import { BaseOperator, dag } from ${JSON.stringify(SDK)};`,
      '',
      'class Noop extends BaseOperator<null> {',
      '  override execute(): null {',
      '    return null;',
      '  }',
      '}',
      '',
      // As every bench DAG: limits that never bind, so the engine is measured, not Airflow's defaults.
      `const options = { schedule: ${JSON.stringify(plan.cron)}, startDate: ${JSON.stringify(startDate)}, timezone: 'UTC', catchup: false, maxActiveRuns: 1_000_000, maxActiveTasks: 1_000_000 };`,
      '',
    ];
    for (let i = file * DAGS_PER_FILE; i < Math.min(plan.dags, (file + 1) * DAGS_PER_FILE); i++) {
      lines.push(`export const dag${i} = dag({ dagId: '${dagId(i)}', ...options }, () => {`, "  new Noop({ taskId: 'noop' });", '});', '');
    }
    await writeFile(path.join(folder, `schedule_${String(file).padStart(3, '0')}.ts`), lines.join('\n'));
  }
}

function dagId(i: number): string {
  return `schedule_${String(i).padStart(4, '0')}`;
}
