import pg from 'pg';
import { silentLogger } from '../../src/common/logger.ts';
import { DagBag } from '../../src/dag-bag/dag-bag.ts';
import { createDagRun } from '../../src/db/dag-runs.ts';
import { Notifier } from '../../src/db/notifier.ts';
import { Channels } from '../../src/db/protocol.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { benchExecutor, type ExecutorKind } from '../lib/executors.ts';
import { preciseNow } from '../lib/graphile.ts';
import { addStage, installPickupAudit, readPickups, slowestLine, span } from '../lib/pickup-audit.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { BENCH_DAGS } from '../lib/triggerer-process.ts';

/** Task processes of the one tsflow worker (`--concurrency`), and of the LocalExecutor. */
const CONCURRENCY = 4;
/** Pause after each run finished, so the next task meets an idle scheduler, worker and server. */
const GAP_MS = 50;
/**
 * The pause before each "after a quiet spell" sample: longer than node-postgres' 10 s idle timeout,
 * after which a pool closes the idle connections it is not told to keep.
 */
const QUIET_GAP_MS = 10_600;

/**
 * Idle pick-up (issue 13's "queued→running p99 ≤ 20 ms on an idle cluster"): runs of a DAG of one
 * no-op task, one at a time — the next run is created only once the previous one finished — through
 * an in-process scheduler with the graphile executor and one `tsflow worker` process, then with a
 * LocalExecutor, on the same server. queued→running is `start_date − queued_at` of each task
 * instance (both clock_timestamp() of the database, as in `bench:executor`).
 *
 * Where the time goes, from database triggers the scenario installs (clock_timestamp() of the
 * statement's row) and the enqueue transaction's commit time (pg_xact_commit_timestamp, when the
 * server tracks it): queued_at → enqueue commit (add_jobs and the commit) → graphile-worker's job
 * locked (its LISTEN hears `jobs:insert`, a worker's getJob) → running (getJob's reply, the handler,
 * the job handed to a warm task process, whose `running` write claims the try).
 * The bench process LISTENs to `jobs:insert` too: commit → NOTIFY heard by a client.
 */
export const executorIdle: Scenario = {
  name: 'executor-idle',
  title: 'idle pick-up: one no-op task at a time, queued → running, graphile executor (1 tsflow worker) vs LocalExecutor',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const samples = context.smoke ? 5 : 150;
    const warmUp = context.smoke ? 1 : 10;
    const quiet = context.smoke ? 0 : 3;
    const db = await openBenchDatabase('executor_idle', context.adminUrl);
    const bag = await DagBag.load(BENCH_DAGS);
    const results: ScenarioResult[] = [];
    try {
      await installPickupAudit(db.database);
      for (const kind of ['graphile', 'local'] as const) {
        context.log(`${kind}: ${samples} runs of one no-op task, one at a time`);
        const figures = await measure(db, bag, kind, { samples, warmUp, quiet }, context.log);
        const p99 = figures['queuedToRunningP99Ms'] as number;
        results.push({
          scenario: kind === 'graphile' ? 'executor-idle' : 'executor-idle-local',
          title: `${kind === 'graphile' ? `graphile executor, 1 tsflow worker × ${CONCURRENCY}` : `LocalExecutor, parallelism ${CONCURRENCY}`}: ${samples} single no-op tasks in sequence, queued → running`,
          settings: { executor: kind, workers: kind === 'graphile' ? 1 : 0, taskProcesses: CONCURRENCY, samples, warmUp, gapMs: GAP_MS, quietSamples: quiet, quietGapMs: QUIET_GAP_MS, commitTime: db.commitTimestamps ? 'pg_xact_commit_timestamp' : 'none (no breakdown at the commit)' },
          figures,
          targets: context.smoke || kind === 'local' ? [] : [target('idle queued→running p99', '20 ms', p99, 20)],
          server: serverInfo(db),
        });
      }
      return results;
    } finally {
      await db.close();
    }
  },
};

async function measure(db: BenchDatabase, bag: DagBag, kind: ExecutorKind, counts: { samples: number; warmUp: number; quiet: number }, log: (line: string) => void): Promise<Record<string, number>> {
  const { database } = db;
  const heard = new Map<string, number>();
  const prefix = `${kind}_`;
  const quietPrefix = `${kind}quiet_`;
  const { executor, stop } = await benchExecutor(database, kind, 1, CONCURRENCY);
  const notifier = new Notifier({ url: database.url, channels: [Channels.trigger, Channels.ti, Channels.dag], logger: silentLogger() });
  // graphile-worker's own announcement of a new job, heard by a client of its own in this process.
  const listener = new pg.Client({ connectionString: database.url, application_name: 'tsflow-bench-listen' });
  const scheduler = new Scheduler({ database, dagBag: bag, executor, logger: silentLogger(), notifier });
  try {
    await notifier.start();
    await listener.connect();
    await listener.query('LISTEN "jobs:insert"');
    let current = '';
    listener.on('notification', () => {
      if (!heard.has(current)) heard.set(current, preciseNow());
    });
    await scheduler.start();
    const runOne = async (runId: string, gapMs: number): Promise<void> => {
      await new Promise((r) => setTimeout(r, gapMs));
      const finished = new Promise<void>((resolve) => {
        const off = scheduler.on('run:state', (r) => {
          if (r.runId === runId && r.state !== 'running') {
            off();
            resolve();
          }
        });
      });
      current = runId;
      await createDagRun(database.db, { dagId: 'executor_idle', runId, conf: {}, logicalDate: new Date() });
      await finished;
    };
    for (let i = 0; i < counts.warmUp; i++) await runOne(`warm_${kind}_${i}`, GAP_MS);
    for (let i = 0; i < counts.samples; i++) await runOne(`${prefix}${i}`, GAP_MS);
    if (counts.quiet > 0) log(`${kind}: ${counts.quiet} more, each after ${QUIET_GAP_MS / 1000} s of quiet`);
    for (let i = 0; i < counts.quiet; i++) await runOne(`${quietPrefix}${i}`, QUIET_GAP_MS);
  } finally {
    await scheduler.stop();
    await stop();
    await listener.end().catch(() => undefined);
    await notifier.stop();
  }
  const figures = await stageFigures(db, kind, prefix, counts.samples, heard, '', log);
  if (counts.quiet > 0) Object.assign(figures, await stageFigures(db, kind, quietPrefix, counts.quiet, heard, 'quiet', log));
  return figures;
}

/** The figures of the runs whose id starts with `runPrefix`: queued→running and its stages, p50/p99 (names prefixed `name`). */
async function stageFigures(db: BenchDatabase, kind: ExecutorKind, runPrefix: string, count: number, heard: ReadonlyMap<string, number>, name: string, log: (line: string) => void): Promise<Record<string, number>> {
  const rows = await readPickups(db.database, 'executor_idle', runPrefix, db.commitTimestamps);
  if (rows.length !== count || rows.some((r) => r.state !== 'success')) throw new Error(`not every sampled task succeeded (${kind}, ${runPrefix}): ${rows.filter((r) => r.state === 'success').length} of ${count}`);
  const stages = rows.map((r) => {
    const common = { total: span(r.queued, r.started), queuedToCommit: span(r.queued, r.committed) };
    if (kind === 'local') return { ...common, commitToRunning: span(r.committed, r.started) };
    return {
      ...common,
      commitToNotify: span(r.committed, heard.get(r.runId) ?? null),
      commitToLocked: span(r.committed, r.locked),
      queuedToLocked: r.committed === null ? span(r.queued, r.locked) : null,
      lockedToRunning: span(r.locked, r.started),
    };
  });
  const figures: Record<string, number> = {};
  const named = (stage: string): string => (name ? `${name}${stage[0]?.toUpperCase()}${stage.slice(1)}` : stage);
  for (const stage of Object.keys(stages[0] ?? {}) as (keyof (typeof stages)[number])[]) {
    addStage(figures, named(stage === 'total' ? 'queuedToRunning' : stage), stages.map((s) => s[stage] ?? null), stage === 'total');
  }
  log(`${kind}${name ? ` (${name})` : ''}: ${slowestLine(stages, 'total')}`);
  return figures;
}
