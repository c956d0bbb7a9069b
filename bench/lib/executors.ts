import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { silentLogger } from '../../src/common/logger.ts';
import type { Database } from '../../src/db/database.ts';
import type { BaseExecutor } from '../../src/executors/base-executor.ts';
import { GraphileExecutor } from '../../src/executors/graphile-executor.ts';
import { LocalExecutor } from '../../src/executors/local-executor.ts';
import { until } from './seed.ts';
import { BENCH_DAGS } from './triggerer-process.ts';

const BIN = fileURLToPath(new URL('../../bin/tsflow.mjs', import.meta.url));

export type ExecutorKind = 'graphile' | 'local';

/**
 * `workers` real `tsflow worker` processes (each `--concurrency perWorker`) on the bench database,
 * once every one has registered its graphile-worker pool. `extraArgs` go to each worker's command line.
 */
export async function startTsflowWorkers(database: Database, workers: number, perWorker: number, extraArgs: readonly string[] = []): Promise<() => Promise<void>> {
  const processes: ChildProcess[] = [];
  for (let i = 0; i < workers; i++) {
    processes.push(
      spawn(process.execPath, [BIN, 'worker', '--concurrency', String(perWorker), '--dags-folder', BENCH_DAGS, ...extraArgs], {
        env: { ...process.env, TSFLOW_DATABASE_URL: database.url, TSFLOW_LOG_LEVEL: 'warn', TSFLOW_HOSTNAME: `bench-${i}` },
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
    );
  }
  const stop = async (): Promise<void> => {
    for (const child of processes) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(processes.map((child) => (child.exitCode !== null ? undefined : new Promise((resolve) => child.once('exit', resolve)))));
  };
  try {
    await until(async () => {
      const dead = processes.find((p) => p.exitCode !== null);
      if (dead) throw new Error(`a tsflow worker exited with ${dead.exitCode} while starting`);
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM job WHERE job_type = 'worker' AND state = 'running' AND cardinality(graphile_worker_ids) > 0`.execute(database.db);
      return (rows[0]?.n ?? 0) >= workers;
    }, 'the workers to start', 60_000, 50);
  } catch (error) {
    await stop();
    throw error;
  }
  return stop;
}

/**
 * The executor an in-process Scheduler uses: the graphile executor with `workers` tsflow workers
 * of `perWorker` task processes each, or a LocalExecutor of `workers × perWorker` task processes.
 */
export async function benchExecutor(database: Database, kind: ExecutorKind, workers: number, perWorker: number): Promise<{ executor: BaseExecutor; stop: () => Promise<void> }> {
  if (kind === 'graphile') {
    const stop = await startTsflowWorkers(database, workers, perWorker);
    return { executor: new GraphileExecutor({ parallelism: 0, database, logger: silentLogger() }), stop };
  }
  const executor = new LocalExecutor({
    parallelism: workers * perWorker,
    logger: silentLogger(),
    worker: { databaseUrl: database.url, dagsFolder: BENCH_DAGS, logLevel: 'warn', defaultDeferrable: false },
  });
  return { executor, stop: () => Promise.resolve() };
}
