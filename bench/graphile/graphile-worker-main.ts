import { Logger, run } from 'graphile-worker';

/*
 * graphile-worker in a process of its own, for the side-by-side benchmarks (bench/lib/graphile.ts):
 * `node --import tsx/esm graphile-worker-main.ts <url> <concurrency> <timed|untimed> <pollIntervalMs>`. Each `probe` job's
 * handler reports, over IPC, the job's id and the moment it started (epoch ms, sub-millisecond);
 * with `timed`, also the commit time of the job's insert (`pg_xact_commit_timestamp`), read after
 * the start was taken. It says `ready` once the worker is listening.
 */
const [url, concurrency, timed, pollInterval] = process.argv.slice(2) as [string, string, string, string];
const now = (): number => performance.timeOrigin + performance.now();
const send = (message: unknown): void => void process.send?.(message);

const runner = await run({
  connectionString: url,
  concurrency: Number(concurrency),
  pollInterval: Number(pollInterval),
  noHandleSignals: true,
  logger: new Logger(() => () => undefined),
  taskList: {
    probe: async (payload, helpers) => {
      const started = now();
      const id = (payload as { id: number }).id;
      if (timed !== 'timed') return send({ started, id });
      const { rows } = await helpers.withPgClient((client) =>
        client.query<{ at: number }>(
          'SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::float8 AS at FROM graphile_worker._private_jobs WHERE id = $1',
          [helpers.job.id],
        ),
      );
      send({ started, committed: rows[0]?.at, id });
    },
  },
});
send({ ready: true });
process.on('message', (message) => {
  if (message === 'stop') void runner.stop().then(() => process.exit(0));
});
await runner.promise;
