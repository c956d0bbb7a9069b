import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import { sql } from 'kysely';
import pg from 'pg';
import { silentLogger } from '../../src/common/logger.ts';
import { EmbeddedServer } from '../../src/db/embedded/embedded-server.ts';
import { BENCH_SERVER_SETTINGS, openBenchDatabase, type BenchDatabase } from '../lib/bench-database.ts';
import { serverInfo, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { seedDeferred, until } from '../lib/seed.ts';
import { restartServer } from '../lib/server-restart.ts';
import { summarise } from '../lib/stats.ts';
import { BENCH_DAGS, DaemonProcess } from '../lib/triggerer-process.ts';

/**
 * The operator's fault drill of issue 11: 3 triggerers and 2 schedulers (LocalExecutor) resume N
 * deferred tasks due over a window, while the drill SIGKILLs triggerers and schedulers (and starts
 * them again), terminates every tsflow backend, and restarts PostgreSQL. It counts daemons that
 * exited on their own, tasks lost (not `success` at the end), tasks resumed twice in one try (a
 * database trigger records every deferred → scheduled move with its try), and how late the last task
 * resumed after its trigger was due.
 */
export const chaos: Scenario = {
  name: 'chaos',
  title: 'triggerers and schedulers under kills, terminated connections and a PostgreSQL restart',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 60 : 3000;
    const windowMs = context.smoke ? 4000 : 40_000;
    // Its own server, so the drill may restart it (a shared server is not ours to restart).
    const serverHome = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bench-chaos-'));
    await chmod(serverHome, 0o755);
    const server = new EmbeddedServer({ home: serverHome, logger: silentLogger(), settings: BENCH_SERVER_SETTINGS });
    const { url: adminUrl, dataDir } = await server.start();
    const db = await openBenchDatabase('chaos', adminUrl);
    const home = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bench-home-'));
    const env = { TSFLOW_HOME: home, TSFLOW_LOGS_FOLDER: path.join(home, 'logs') };
    const spawnTriggerer = () => DaemonProcess.spawn('triggerer', db.url, ['--heartbeat-interval', '1', '--health-check-threshold', '5', '--capacity', String(size)], env);
    const spawnScheduler = () =>
      DaemonProcess.spawn('scheduler', db.url, ['--dags-folder', BENCH_DAGS, '--parallelism', '8', '--heartbeat-interval', '1', '--health-check-threshold', '5'], env);
    const triggerers = [spawnTriggerer(), spawnTriggerer(), spawnTriggerer()];
    const schedulers = [spawnScheduler(), spawnScheduler()];
    const killedByUs = new Set<DaemonProcess>();
    let exitedOnTheirOwn = 0;
    const actions: Record<string, number> = { killTriggerer: 0, killScheduler: 0, terminateBackends: 0, restartServer: 0 };
    try {
      for (const daemon of [...triggerers, ...schedulers]) await daemon.ready(db.database);
      await installTryAudit(db);
      const start = DateTime.utc().plus({ seconds: 3 });
      const moments = Array.from({ length: size }, (_, i) => start.plus({ milliseconds: Math.round((i * windowMs) / size) }));
      await seedDeferred(db.database, {
        dagId: 'chaos_bench',
        layout: { kind: 'run-per-task', runPrefix: 'c', taskId: 'wait' },
        classpath: 'tsflow.triggers.DateTimeTrigger',
        kwargs: moments.map((m) => ({ moment: m.toISO() as string })),
      });
      context.log(`chaos ${size}: due from ${start.toISOTime()} over ${windowMs / 1000} s; the drill runs meanwhile`);

      // The drill: one fault every 2 s (scaled down in smoke mode), in rotation, until the last is due.
      const drillEnd = start.toMillis() + windowMs;
      const everyMs = context.smoke ? 700 : 2000;
      let step = 0;
      while (Date.now() < drillEnd) {
        await new Promise((resolve) => setTimeout(resolve, everyMs));
        // A daemon that died without being killed is the failure this drill exists to find.
        for (const group of [triggerers, schedulers]) {
          for (const [i, daemon] of group.entries()) {
            if (daemon.child.exitCode === null && daemon.child.signalCode === null) continue;
            if (!killedByUs.has(daemon)) {
              exitedOnTheirOwn++;
              context.log(`a daemon exited on its own (code ${daemon.child.exitCode}): ${daemon.stderr.slice(-500)}`);
            }
            group[i] = group === triggerers ? spawnTriggerer() : spawnScheduler();
          }
        }
        const action = ['terminateBackends', 'killTriggerer', 'terminateBackends', 'killScheduler', 'restartServer'][step++ % 5] as string;
        if (action === 'restartServer' && actions['restartServer']! >= (context.smoke ? 1 : 3)) continue;
        actions[action] = (actions[action] ?? 0) + 1;
        context.log(`drill: ${action}`);
        if (action === 'terminateBackends') await terminateBackends(db.url);
        else if (action === 'restartServer') await restartServer(dataDir);
        else {
          const group = action === 'killTriggerer' ? triggerers : schedulers;
          const victim = group[step % group.length] as DaemonProcess;
          killedByUs.add(victim);
          await victim.stop('SIGKILL');
        }
      }
      // Replace what is dead, then let the survivors finish.
      for (const group of [triggerers, schedulers]) {
        for (const [i, daemon] of group.entries()) {
          if (daemon.child.exitCode === null && daemon.child.signalCode === null) continue;
          if (!killedByUs.has(daemon)) exitedOnTheirOwn++;
          group[i] = group === triggerers ? spawnTriggerer() : spawnScheduler();
        }
      }
      const finished = () => sql<{ n: number }>`SELECT count(*)::int AS n FROM dag_run WHERE dag_id = 'chaos_bench' AND state IN ('success', 'failed')`.execute(db.database.db);
      const settleMs = context.smoke ? 60_000 : 180_000;
      await until(async () => ((await finished()).rows[0]?.n ?? 0) === size, 'every run to finish', settleMs, 500).catch(() => undefined);
      for (const group of [triggerers, schedulers]) {
        for (const daemon of group) if (daemon.child.exitCode !== null && !killedByUs.has(daemon)) exitedOnTheirOwn++;
      }
      const outcome = await audit(db, moments);
      return [
        {
          scenario: 'chaos',
          title: `${size.toLocaleString('en')} deferred tasks due over ${windowMs / 1000} s; 3 triggerers, 2 schedulers; kills, terminations and restarts meanwhile`,
          settings: { tasks: size, windowMs, ...actions },
          figures: {
            daemonsExitedOnTheirOwn: exitedOnTheirOwn,
            lost: outcome.lost,
            resumedTwiceInOneTry: outcome.twice,
            retried: outcome.retried,
            resumeP50Ms: outcome.lateness.p50,
            resumeP99Ms: outcome.lateness.p99,
            lastResumeLateMs: outcome.lateness.max,
          },
          targets: context.smoke
            ? []
            : [
                { what: 'daemons that exited on their own', target: '0', actual: String(exitedOnTheirOwn), met: exitedOnTheirOwn === 0 },
                { what: 'tasks lost', target: '0', actual: String(outcome.lost), met: outcome.lost === 0 },
                { what: 'tasks resumed twice in one try', target: '0', actual: String(outcome.twice), met: outcome.twice === 0 },
              ],
          server: serverInfo(db),
        },
      ];
    } finally {
      await Promise.all([...triggerers, ...schedulers].map((d) => d.stop()));
      await db.close();
      await server.stop();
      await rm(home, { recursive: true, force: true });
      await rm(serverHome, { recursive: true, force: true });
    }
  },
};

/** Records every deferred → scheduled move with the try it belongs to. */
async function installTryAudit(db: BenchDatabase): Promise<void> {
  await sql`CREATE TABLE chaos_resume (run_id text, try_number int, at timestamptz DEFAULT clock_timestamp())`.execute(db.database.db);
  await sql`
    CREATE FUNCTION chaos_log_resume() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO chaos_resume (run_id, try_number) VALUES (NEW.run_id, NEW.try_number); RETURN NEW; END $$`.execute(db.database.db);
  await sql`
    CREATE TRIGGER chaos_audit AFTER UPDATE OF state ON task_instance FOR EACH ROW
    WHEN (OLD.state = 'deferred' AND NEW.state = 'scheduled') EXECUTE FUNCTION chaos_log_resume()`.execute(db.database.db);
}

async function audit(db: BenchDatabase, moments: readonly DateTime[]) {
  const { rows: states } = await sql<{ run_id: string; state: string | null; try_number: number }>`
    SELECT run_id, state, try_number FROM task_instance WHERE dag_id = 'chaos_bench'`.execute(db.database.db);
  const { rows: resumes } = await sql<{ run_id: string; try_number: number; n: number; first_at: Date }>`
    SELECT run_id, try_number, count(*)::int AS n, min(at) AS first_at FROM chaos_resume GROUP BY 1, 2`.execute(db.database.db);
  const lateness = resumes
    .filter((r) => r.try_number === 1)
    .map((r) => r.first_at.getTime() - (moments[Number(r.run_id.slice(1))] as DateTime).toMillis());
  return {
    lost: states.filter((s) => s.state !== 'success').length,
    retried: states.filter((s) => s.try_number > 1).length,
    twice: resumes.filter((r) => r.n > 1).length,
    lateness: summarise(lateness),
  };
}

/** Terminates every backend of the database but the caller's, as `pg_terminate_backend` by an operator. */
async function terminateBackends(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
  } finally {
    await client.end();
  }
}
