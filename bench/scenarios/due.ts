import os from 'node:os';
import { sql } from 'kysely';
import pg from 'pg';
import { silentLogger } from '../../src/common/logger.ts';
import { DagBag } from '../../src/dag-bag/dag-bag.ts';
import { createDagRun, upsertDags } from '../../src/db/dag-runs.ts';
import { Channels } from '../../src/db/protocol.ts';
import { startQueuedRun } from '../../src/db/scheduling.ts';
import { runTaskInstance } from '../../src/runner/task-runner.ts';
import { openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { GraphileBench, preciseNow } from '../lib/graphile.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_DAGS, BENCH_TRIGGERS, DaemonProcess } from '../lib/triggerer-process.ts';

/** Pause between rounds, so each defer meets an idle triggerer (and its spent-trigger delete has run). */
const GAP_MS = 60;

/**
 * Due: a task defers, through the real runner, to a time trigger that is already due; the time from
 * the defer's commit to the commit of the event that resumes it (both `pg_xact_commit_timestamp`),
 * one at a time. Beside it, on the same server: graphile-worker's `addJob` returning → the job's
 * handler starting, one at a time.
 */
export const due: Scenario = {
  name: 'due',
  title: 'already-due trigger: defer commit → event commit, beside graphile-worker add → handler start',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const rounds = context.smoke ? 5 : 300;
    const warmUp = context.smoke ? 1 : 20;
    const db = await openBenchDatabase('due', context.adminUrl);
    try {
      const tsflow = await runTsflow(db, rounds, warmUp, context);
      const graphile = await runGraphile(db, rounds, warmUp);
      return [tsflow, graphile];
    } finally {
      await db.close();
    }
  },
};

async function runTsflow(db: BenchDatabase, rounds: number, warmUp: number, context: ScenarioContext): Promise<ScenarioResult> {
  const triggerer = DaemonProcess.spawn('triggerer', db.url, ['--triggers-folder', BENCH_TRIGGERS]);
  const listener = new pg.Client({ connectionString: db.url, application_name: 'tsflow-bench' });
  try {
    await triggerer.ready(db.database);
    await listener.connect();
    await listener.query(`LISTEN ${Channels.ti}`);
    let resumed: (() => void) | undefined;
    listener.on('notification', (n) => {
      if (n.payload === 'resumed') resumed?.();
    });
    const bag = await DagBag.load(BENCH_DAGS);
    const dag = bag.getDag('due_bench');
    const key = { dagId: 'due_bench', runId: 'due', taskId: 'probe' };
    await upsertDags(db.database.db, [{ dagId: dag.dagId, fileloc: dag.fileloc ?? '' }]);
    await createDagRun(db.database.db, { dagId: key.dagId, runId: key.runId, conf: {}, logicalDate: new Date() });
    await startQueuedRun(db.database.db, key.dagId, key.runId, [{ taskId: 'probe', maxTries: 0, priorityWeight: 1, queue: 'default' }], { checkLimits: false });
    const deps = { db: db.database.db, logger: silentLogger(), hostname: os.hostname(), pid: process.pid, defaults: { deferrable: false } };
    const total: number[] = [];
    const toFired: number[] = [];
    for (let round = 0; round < warmUp + rounds; round++) {
      await sql`UPDATE task_instance SET state = 'queued', next_method = NULL, next_kwargs = NULL WHERE run_id = ${key.runId}`.execute(db.database.db);
      const heard = new Promise<void>((resolve) => (resumed = resolve));
      const result = await runTaskInstance(deps, dag, key);
      if (result.state !== 'deferred') throw new Error(`the probe did not defer: ${result.state} ${result.error ?? ''}`);
      // The newest trigger row was inserted by the defer statement; it is deleted only once its
      // event is stored and 50 ms have passed without another. (Without commit timestamps, as on the
      // test server in smoke mode: the client's clock after the defer, and the row's scheduled_at.)
      const deferredAt = db.commitTimestamps
        ? (
            await sql<{ at: number | null }>`
              SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::float8 AS at FROM trigger ORDER BY id DESC LIMIT 1`.execute(db.database.db)
          ).rows[0]?.at
        : Date.now();
      await heard;
      const writtenAt = db.commitTimestamps ? sql`pg_xact_commit_timestamp(xmin)` : sql`scheduled_at`;
      const { rows } = await sql<{ at: number; fired: string }>`
        SELECT (extract(epoch FROM ${writtenAt}) * 1000)::float8 AS at, next_kwargs -> 'event' ->> 'firedAt' AS fired
        FROM task_instance WHERE run_id = ${key.runId} AND state = 'scheduled'`.execute(db.database.db);
      const written = rows[0];
      if (deferredAt === null || deferredAt === undefined || !written) throw new Error('could not read the defer and event commit times');
      if (round >= warmUp) {
        total.push(written.at - deferredAt);
        toFired.push(Date.parse(written.fired) - deferredAt);
      }
      await new Promise((r) => setTimeout(r, GAP_MS));
    }
    context.log(`due: ${rounds} defers timed`);
    const s = summarise(total);
    const f = summarise(toFired);
    return {
      scenario: 'due',
      title: `tsflow: a task defers to an already-due time trigger, ${rounds} times in sequence: defer commit → event commit`,
      settings: { rounds, warmUpRounds: warmUp, gapMs: GAP_MS, triggerers: 1, commitTime: db.commitTimestamps ? 'pg_xact_commit_timestamp' : 'client clock / scheduled_at' },
      figures: { dueP50Ms: s.p50, dueP99Ms: s.p99, dueMaxMs: s.max, dueMinMs: s.min, firedP50Ms: f.p50, firedP99Ms: f.p99 },
      targets: context.smoke ? [] : [target('due p50', '2 ms', s.p50, 2)],
      server: serverInfo(db),
    };
  } finally {
    await listener.end().catch(() => undefined);
    await triggerer.stop();
  }
}

async function runGraphile(db: BenchDatabase, rounds: number, warmUp: number): Promise<ScenarioResult> {
  const graphile = await GraphileBench.start(db.url, { concurrency: 1, timed: db.commitTimestamps });
  try {
    const fromCommit: number[] = [];
    const fromReturn: number[] = [];
    for (let round = 0; round < warmUp + rounds; round++) {
      await graphile.utils.addJob('probe', { id: round });
      const returned = preciseNow();
      const started = await graphile.whenStarted(round);
      // Without commit timestamps (the test server in smoke mode): from addJob's return.
      const committed = db.commitTimestamps ? graphile.committedAt(round) : returned;
      if (committed === undefined) throw new Error(`no commit time for graphile job ${round}`);
      if (round >= warmUp) {
        fromCommit.push(started - committed);
        fromReturn.push(started - returned);
      }
      await new Promise((r) => setTimeout(r, GAP_MS));
    }
    const s = summarise(fromCommit);
    const r = summarise(fromReturn);
    return {
      scenario: 'due-graphile',
      title: `graphile-worker 0.18 (concurrency 1, own process): addJob commit → handler started, ${rounds} jobs in sequence`,
      settings: { rounds, warmUpRounds: warmUp, gapMs: GAP_MS, commitTime: db.commitTimestamps ? 'pg_xact_commit_timestamp of the job row, read by the handler' : 'addJob returned' },
      figures: { addToStartP50Ms: s.p50, addToStartP99Ms: s.p99, addToStartMaxMs: s.max, addToStartMinMs: s.min, returnToStartP50Ms: r.p50, returnToStartP99Ms: r.p99 },
      targets: [],
      server: serverInfo(db),
    };
  } finally {
    await graphile.stop();
  }
}
