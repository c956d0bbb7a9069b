import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../../src/db/database.ts';
import { listWaits, waitsStatements, type WaitQuery } from '../../src/db/waits.ts';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { summarise } from '../lib/stats.ts';

/**
 * Waits: N pending waits (20 DAGs; time, file and HTTP triggers; a third without a timeout; half
 * owned by a triggerer), seeded set-based. Then `listWaits` pages of 100, each variant called
 * repeatedly: the first page and a deep page (the cursor after half the waits), in timeout and
 * creation order, without and with filters. Each variant's plan is checked to read task_instance
 * through an index (EXPLAIN ANALYZE), never a sequential scan.
 */
export const waits: Scenario = {
  name: 'waits',
  title: 'listing pending waits',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 2000 : 100_000;
    const calls = context.smoke ? 10 : 100;
    const db = await openBenchDatabase('waits', context.adminUrl);
    try {
      const seedStart = Date.now();
      const jobId = await seedWaits(db.database.db, size);
      context.log(`seeded ${size} waits in ${Date.now() - seedStart} ms`);
      const base: WaitQuery = { limit: 100 };
      const variants: [string, WaitQuery][] = [
        ['first', { ...base }],
        ['firstNoTotal', { ...base, withTotal: false }],
        ['deep', { ...base, withTotal: false, cursor: await cursorAfter(db.database.db, {}, size / 2) }],
        ['createdFirst', { ...base, order: 'created' }],
        ['createdDeep', { ...base, order: 'created', withTotal: false, cursor: await cursorAfter(db.database.db, { order: 'created' }, size / 2) }],
        ['dagFirst', { ...base, dagId: 'waits_7' }],
        ['dagDeep', { ...base, dagId: 'waits_7', withTotal: false, cursor: await cursorAfter(db.database.db, { dagId: 'waits_7' }, size / 40) }],
        ['classpathFirst', { ...base, classpath: 'tsflow.triggers.HttpPollTrigger' }],
        ['classpathDeep', { ...base, classpath: 'tsflow.triggers.HttpPollTrigger', withTotal: false, cursor: await cursorAfter(db.database.db, { classpath: 'tsflow.triggers.HttpPollTrigger' }, size / 10) }],
        ['triggererFirst', { ...base, triggererId: jobId }],
        ['searchFirst', { ...base, search: 'task_42' }],
      ];
      const figures: Record<string, number> = {};
      const plans: string[] = [];
      for (const [name, query] of variants) {
        const plan = await explain(db.database.db, waitsStatements(query).page);
        const seq = /Seq Scan on task_instance/.test(plan);
        const index = plan.match(/Index (?:Only )?Scan(?: Backward)? using (\w+) on task_instance/)?.[1] ?? (seq ? 'SEQ SCAN' : 'bitmap/other');
        plans.push(`${name}: ${index}`);
        if (['first', 'deep', 'dagDeep', 'classpathDeep'].includes(name)) context.log(`plan of ${name}:\n${plan}`);
        figures[`${name}IndexUsed`] = seq ? 0 : 1;
        await listWaits(db.database.db, query); // warm
        const times: number[] = [];
        for (let i = 0; i < calls; i++) {
          const t0 = performance.now();
          const page = await listWaits(db.database.db, query);
          times.push(performance.now() - t0);
          if (page.waits.length === 0) throw new Error(`variant ${name} returned no waits`);
        }
        const s = summarise(times);
        figures[`${name}P50Ms`] = s.p50;
        figures[`${name}P99Ms`] = s.p99;
        context.log(`${name}: p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms (${index})`);
      }
      const first = await listWaits(db.database.db, base);
      figures['firstTotal'] = first.total ?? Number.NaN;
      figures['firstTotalExact'] = first.totalExact ? 1 : 0;
      const count = summarise(await timed(calls, () => sql`SELECT count(*) FROM task_instance WHERE state = 'deferred' AND next_method IS NOT NULL`.execute(db.database.db)));
      figures['countP50Ms'] = count.p50;
      figures['countP99Ms'] = count.p99;
      return [
        {
          scenario: 'waits',
          title: `listWaits, pages of 100, over ${size.toLocaleString('en')} pending waits`,
          settings: { waits: size, callsPerVariant: calls, plans: plans.join('; ') },
          figures,
          targets: context.smoke
            ? []
            : [
                target('variants planned with a sequential scan of task_instance', '0', variants.length - Object.keys(figures).filter((k) => k.endsWith('IndexUsed') && figures[k] === 1).length, 0, 'variants'),
                target('first page with total, p99', '50 ms', figures['firstP99Ms'] as number, 50),
                target('deep page (cursor after 50,000), p99', '50 ms', figures['deepP99Ms'] as number, 50),
                target('DAG-filtered deep page, p99', '50 ms', figures['dagDeepP99Ms'] as number, 50),
              ],
          server: serverInfo(db),
        },
      ];
    } finally {
      await db.close();
    }
  },
};

/**
 * N deferred task instances on their own trigger rows in one run per DAG: 20 DAGs; classes 60 %
 * time, 20 % file, 20 % HTTP; timeouts spread over an hour, every third none; every other owned by
 * a (live) triggerer job. Returns that job's id.
 */
export async function seedWaits(db: Db, size: number): Promise<number> {
  const { rows } = await sql<{ id: number }>`INSERT INTO job (job_type, hostname, pid, state) VALUES ('triggerer', 'bench', 1, 'running') RETURNING id`.execute(db);
  const jobId = rows[0]?.id as number;
  await sql`INSERT INTO dag (dag_id, fileloc) SELECT 'waits_' || d, '' FROM generate_series(0, 19) d`.execute(db);
  await sql`INSERT INTO dag_run (dag_id, run_id, state) SELECT 'waits_' || d, 'run', 'running' FROM generate_series(0, 19) d`.execute(db);
  await sql`
    WITH created AS (
      INSERT INTO trigger (classpath, kwargs, triggerer_id)
      SELECT CASE WHEN i % 5 < 3 THEN 'tsflow.triggers.DateTimeTrigger' WHEN i % 5 = 3 THEN 'tsflow.triggers.FileExistsTrigger' ELSE 'tsflow.triggers.HttpPollTrigger' END,
             CASE WHEN i % 5 < 3 THEN jsonb_build_object('moment', to_char((now() + make_interval(secs => i % 3600)) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                  WHEN i % 5 = 3 THEN jsonb_build_object('path', '/data/in/' || i || '.csv')
                  ELSE jsonb_build_object('url', 'https://api.example.com/jobs/' || i || '?token=t', 'method', 'GET') END,
             CASE WHEN i % 2 = 0 THEN ${jobId}::bigint END
      FROM generate_series(0, ${size - 1}::int) i
      RETURNING id
    ),
    numbered AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM created)
    INSERT INTO task_instance (dag_id, run_id, task_id, state, try_number, trigger_id, next_method, next_kwargs, start_date, trigger_timeout)
    SELECT 'waits_' || (i % 20), 'run', 'task_' || i, 'deferred', 1, id, 'executeComplete', '{}'::jsonb, now(),
           CASE WHEN i % 3 = 0 THEN NULL ELSE now() + make_interval(secs => 600 + random() * 3600) END
    FROM numbered`.execute(db);
  await sql`VACUUM ANALYZE dag_run, task_instance, trigger, job`.execute(db);
  return jobId;
}

/** The cursor after the first `n` waits of `query`, walked in pages of 500. */
export async function cursorAfter(db: Db, query: WaitQuery, n: number): Promise<string> {
  let cursor: string | undefined;
  for (let seen = 0; seen < n; ) {
    const page = await listWaits(db, { ...query, limit: Math.min(500, n - seen), withTotal: false, cursor });
    seen += page.waits.length;
    if (page.nextCursor === null) throw new Error(`fewer than ${n} waits match ${JSON.stringify(query)}`);
    cursor = page.nextCursor;
  }
  return cursor as string;
}

async function explain(db: Db, statement: RawBuilder<unknown>): Promise<string> {
  const { rows } = await sql<{ 'QUERY PLAN': string }>`EXPLAIN (ANALYZE, BUFFERS) ${statement}`.execute(db);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

async function timed(n: number, run: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return times;
}
