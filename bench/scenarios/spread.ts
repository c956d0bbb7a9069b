import { DateTime } from 'luxon';
import { openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { GraphileBench, preciseNow } from '../lib/graphile.ts';
import { PgCpuMeter, processCpuSeconds } from '../lib/pg-cpu.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { countTriggers, latenessMs, seedDeferred, until, untilAllResumed } from '../lib/seed.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * Spread: N DateTimeTriggers due uniformly over a window, on one triggerer. Lateness = commit time of
 * each task instance's `scheduled` state − its trigger's due moment. CPU over the window, from /proc:
 * PostgreSQL's (every server process) and the triggerer's. Then the same shape for graphile-worker on
 * the same server: N jobs added beforehand with `runAt` spread over the window, at its default poll
 * interval and at 10 ms, with the same CPU readings and its lateness (runAt → handler start).
 */
export const spread: Scenario = {
  name: 'spread',
  title: 'N triggers due uniformly over 10 s, beside graphile-worker',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 200 : 10_000;
    const windowMs = context.smoke ? 2000 : 10_000;
    const db = await openBenchDatabase('spread', context.adminUrl);
    try {
      const results = [await runTsflow(db, size, windowMs, context)];
      for (const pollIntervalMs of context.smoke ? [2000] : [2000, 10]) results.push(await runGraphile(db, size, windowMs, pollIntervalMs, context));
      return results;
    } finally {
      await db.close();
    }
  },
};

async function runTsflow(db: BenchDatabase, size: number, windowMs: number, context: ScenarioContext): Promise<ScenarioResult> {
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
    const cpu = await measureCpu(db, triggerer.pid, start.toMillis() - 200, () => untilAllResumed(db.database, size, windowMs + 60_000, 200), context.log);
    const late = summarise(await latenessMs(db.database, db.commitTimestamps));
    return {
      scenario: 'spread',
      title: `tsflow: ${size.toLocaleString('en')} triggers due uniformly over ${windowMs / 1000} s`,
      settings: { triggers: size, windowMs, triggerers: 1, claimedBeforeStart, cpu: '/proc utime+stime, every PostgreSQL process and the triggerer' },
      figures: {
        latenessP50Ms: late.p50,
        latenessP99Ms: late.p99,
        latenessMaxMs: late.max,
        latenessMinMs: late.min,
        pgCpuSeconds: cpu.pg,
        pgCpuPerEventUs: (cpu.pg / size) * 1e6,
        triggererCpuPerEventUs: (cpu.daemon / size) * 1e6,
      },
      targets: context.smoke ? [] : [target('p99 lateness, 10,000 over 10 s', '10 ms', late.p99, 10)],
      server: serverInfo(db),
    };
  } finally {
    await triggerer.stop();
  }
}

async function runGraphile(db: BenchDatabase, size: number, windowMs: number, pollIntervalMs: number, context: ScenarioContext): Promise<ScenarioResult> {
  const graphile = await GraphileBench.start(db.url, { concurrency: 10, pollIntervalMs });
  try {
    const start = Date.now() + (context.smoke ? 2000 : 4000);
    const step = windowMs / size;
    const runAt = Array.from({ length: size }, (_, i) => start + Math.round(i * step));
    await graphile.utils.addJobs(runAt.map((at, id) => ({ identifier: 'probe', payload: { id }, runAt: new Date(at) })));
    context.log(`spread graphile (poll ${pollIntervalMs} ms): ${size} jobs added`);
    const cpu = await measureCpu(db, graphile.pid, start - 200, () =>
      until(async () => graphile.startedCount >= size, 'every graphile job to start', windowMs + 60_000, 100).then(() => undefined),
      context.log,
    );
    const late = summarise(runAt.map((at, id) => (graphile.startedAt(id) as number) - at));
    return {
      scenario: 'spread-graphile',
      title: `graphile-worker 0.18: ${size.toLocaleString('en')} jobs with runAt spread over ${windowMs / 1000} s, pollInterval ${pollIntervalMs} ms`,
      settings: { jobs: size, windowMs, concurrency: 10, pollIntervalMs, cpu: '/proc utime+stime, every PostgreSQL process and the worker' },
      figures: {
        latenessP50Ms: late.p50,
        latenessP99Ms: late.p99,
        latenessMaxMs: late.max,
        pgCpuSeconds: cpu.pg,
        pgCpuPerEventUs: (cpu.pg / size) * 1e6,
        workerCpuPerEventUs: (cpu.daemon / size) * 1e6,
      },
      targets: [],
      server: serverInfo(db),
    };
  } finally {
    await graphile.stop();
  }
}

/** CPU seconds PostgreSQL and one daemon use from `fromMs` (epoch) until `work` resolves. */
async function measureCpu(
  db: BenchDatabase,
  daemonPid: number,
  fromMs: number,
  work: () => Promise<void>,
  log: (line: string) => void,
): Promise<{ pg: number; daemon: number }> {
  const wait = fromMs - preciseNow();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const meter = new PgCpuMeter(db.database);
  await meter.start();
  const daemonBefore = (await processCpuSeconds(daemonPid)) ?? Number.NaN;
  await work();
  const daemonAfter = (await processCpuSeconds(daemonPid)) ?? Number.NaN;
  const pg = await meter.stop();
  const parts = Object.entries(meter.breakdown()).filter(([, seconds]) => seconds > 0);
  log(`PostgreSQL CPU by process: ${parts.map(([kind, seconds]) => `${kind} ${seconds.toFixed(2)} s`).join(', ')}`);
  return { pg, daemon: daemonAfter - daemonBefore };
}
