import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { hashPassword, newSecret, sha256 } from '../../src/api/credentials.ts';
import { addToken, createUser } from '../../src/db/api-users.ts';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { freePort } from '../lib/metrics-scrape.ts';
import { serverInfo, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { summarise } from '../lib/stats.ts';

const BIN = fileURLToPath(new URL('../../bin/tsflow.mjs', import.meta.url));

/** The list endpoints measured, by the figure prefix they are reported under. */
const ENDPOINTS: readonly (readonly [string, string])[] = [
  ['dags', '/api/v1/dags?limit=50'],
  ['runs', '/api/v1/dags/bench_dag_0000/dagRuns?limit=50'],
  ['runsAllFiltered', '/api/v1/dags/~/dagRuns?state=success&limit=50&offset=500'],
  ['taskInstances', '/api/v1/dags/bench_dag_0000/dagRuns/run_00000/taskInstances?limit=100'],
  ['pools', '/api/v1/pools'],
  ['jobs', '/api/v1/jobs'],
  ['health', '/api/v1/health'],
];

/** `clients` loops, each sending one request after the other for `durationMs`; every latency in ms. */
async function load(url: string, token: string, clients: number, durationMs: number): Promise<{ latencies: number[]; errors: number; seconds: number }> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const end = started + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
          await response.arrayBuffer();
          if (response.status === 200) latencies.push(performance.now() - t0);
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  return { latencies, errors, seconds: (performance.now() - started) / 1000 };
}

/**
 * API: a `tsflow api-server` process over a database with 200 DAGs, 20,000 runs (10,000 of one DAG)
 * and a run of 100 task instances; each list endpoint is loaded by 50 concurrent clients (keep-alive,
 * bearer token) for a fixed time from this process. Figures per endpoint: p50, p99, requests/s.
 */
export const api: Scenario = {
  name: 'api',
  title: 'API list endpoints under concurrent clients',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const clients = context.smoke ? 5 : 50;
    const durationMs = context.smoke ? 300 : 10_000;
    const dagCount = context.smoke ? 10 : 200;
    const runsPerDag = context.smoke ? 20 : 100;
    const bigDagRuns = context.smoke ? 50 : 10_000;
    const db = await openBenchDatabase('api', context.adminUrl);
    const d = db.database.db;
    await sql`INSERT INTO dag (dag_id, fileloc, timetable_summary) SELECT 'bench_dag_' || lpad(i::text, 4, '0'), '/bench/dags.ts', '@daily' FROM generate_series(0, ${dagCount - 1}) i`.execute(d);
    await sql`INSERT INTO dag_run (dag_id, run_id, state, logical_date)
      SELECT 'bench_dag_' || lpad(g.d::text, 4, '0'), 'run_' || lpad(g.r::text, 5, '0'), CASE WHEN g.r % 3 = 0 THEN 'failed' ELSE 'success' END,
        timestamptz '2020-01-01' + make_interval(hours => g.r)
      FROM (SELECT d, r FROM generate_series(1, ${dagCount - 1}) d, generate_series(0, ${runsPerDag - 1}) r
            UNION ALL SELECT 0, r FROM generate_series(0, ${bigDagRuns - 1}) r) g`.execute(d);
    await sql`INSERT INTO task_instance (dag_id, run_id, task_id, state, try_number)
      SELECT 'bench_dag_0000', 'run_00000', 'task_' || lpad(i::text, 3, '0'), 'success', 1 FROM generate_series(0, 99) i`.execute(d);
    await sql`ANALYZE`.execute(d);
    await createUser(d, 'bench', 'viewer', await hashPassword('bench'));
    const token = newSecret('tsf_');
    await addToken(d, 'bench', sha256(token));

    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'api-server', '--port', String(port)], {
      env: { ...process.env, TSFLOW_DATABASE_URL: db.url, TSFLOW_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('listening on')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`tsflow api-server exited (${code}) before listening`)));
      });
      const base = `http://127.0.0.1:${port}`;
      const figures: Record<string, number> = {};
      for (const [name, route] of ENDPOINTS) {
        await load(`${base}${route}`, token, clients, Math.min(durationMs, 1000)); // warm-up
        const { latencies, errors, seconds } = await load(`${base}${route}`, token, clients, durationMs);
        const summary = summarise(latencies);
        figures[`${name}P50Ms`] = summary.p50;
        figures[`${name}P99Ms`] = summary.p99;
        figures[`${name}PerSecond`] = latencies.length / seconds;
        figures[`${name}Errors`] = errors;
        context.log(`${route}: p50 ${summary.p50.toFixed(1)} ms, p99 ${summary.p99.toFixed(1)} ms, ${(latencies.length / seconds).toFixed(0)} req/s, ${errors} errors`);
      }
      return [
        {
          scenario: 'api',
          title: `list endpoints, ${clients} concurrent clients for ${durationMs / 1000} s each (provisional: the machine is shared)`,
          settings: { clients, durationSeconds: durationMs / 1000, dags: dagCount, runs: (dagCount - 1) * runsPerDag + bigDagRuns, taskInstancesInRun: 100 },
          figures,
          targets: [],
          server: serverInfo(db),
        },
      ];
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)));
      await db.close();
    }
  },
};
