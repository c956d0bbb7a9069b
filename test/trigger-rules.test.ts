import path from 'node:path';
import { expect } from 'chai';
import { sql } from 'kysely';
import { DagBag } from '../src/dag-bag/dag-bag.ts';
import { finishTry, startTry } from '../src/db/task-instances.ts';
import type { Scheduler } from '../src/scheduler/scheduler.ts';
import type { JsonObject } from '../src/sdk/json.ts';
import { TRIGGER_RULES, type TriggerRule } from '../src/sdk/trigger-rule.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { InProcessExecutor } from './support/in-process-executor.ts';
import { createRun, FIXTURES, localExecutor, startScheduler } from './support/rig.ts';

const FOLDER = path.join(FIXTURES, 'trigger-rule-dags');

/** The upstream outcomes tried for every rule: up_a and up_b each succeed (s), fail (f) or skip (k). */
const COMBOS = ['ss', 'sf', 'sk', 'ff', 'fk', 'kk'] as const;
const OUTCOME = { s: 'success', f: 'fail', k: 'skip' } as const;

/**
 * What `probe` ends as for each combination above, in order, by Airflow's TriggerRuleDep:
 * S ran (success), K skipped, U upstream_failed.
 */
const EXPECTED: Record<TriggerRule, string> = {
  all_success: 'SUKUUK',
  all_failed: 'KKKSKK',
  all_done: 'SSSSSS',
  all_skipped: 'KKKKKS',
  one_success: 'SSSUUK',
  one_failed: 'KSKSSK',
  one_done: 'SSSSSK',
  none_failed: 'SUSUUS',
  none_failed_min_one_success: 'SUSUUK',
  none_skipped: 'SSKSKK',
  always: 'SSSSSS',
};
const STATE = { S: 'success', K: 'skipped', U: 'upstream_failed' } as const;

describe('trigger rules and branching, end to end (PostgreSQL, in-process scheduler)', () => {
  let t: TestDatabase;
  let bag: DagBag;
  let scheduler: Scheduler;

  before(async () => {
    bag = await DagBag.load(FOLDER);
    expect([...bag.importErrors.values()].map(String)).to.deep.equal([]);
  });
  beforeEach(async () => {
    t = await createTestDatabase();
    ({ scheduler } = await startScheduler(t.database, bag, { pollIntervalMs: 1000 }, new InProcessExecutor(t.database, bag, 8)));
  });
  afterEach(async () => {
    await stopAll();
    await t.drop();
  });

  async function states(dagId: string, runId: string): Promise<Record<string, string | null>> {
    const { rows } = await sql<{ task_id: string; state: string | null }>`
      SELECT task_id, state FROM task_instance WHERE dag_id = ${dagId} AND run_id = ${runId}`.execute(t.database.db);
    return Object.fromEntries(rows.map((r) => [r.task_id, r.state]));
  }

  async function runStates(dagId: string): Promise<Map<string, string>> {
    const { rows } = await sql<{ run_id: string; state: string }>`SELECT run_id, state FROM dag_run WHERE dag_id = ${dagId}`.execute(t.database.db);
    return new Map(rows.map((r) => [r.run_id, r.state]));
  }

  /** Creates the runs, nudges the scheduler and waits until each has ended. */
  async function runAll(runs: readonly { dagId: string; runId: string; conf: JsonObject }[], timeoutMs = 60_000): Promise<void> {
    for (const run of runs) await createRun(t.database, bag.getDag(run.dagId), run.runId, run.conf);
    scheduler.nudge();
    await eventually(
      async () => {
        const { rows } = await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM dag_run WHERE state IN ('success', 'failed')
            AND (dag_id, run_id) IN (SELECT * FROM unnest(${runs.map((r) => r.dagId)}::text[], ${runs.map((r) => r.runId)}::text[]))`.execute(t.database.db);
        return rows[0]!.n === runs.length;
      },
      `${runs.length} runs to end`,
      timeoutMs,
    );
  }

  it('each trigger rule over every combination of upstream success, failure and skip; a run fails only by its leaves', async function () {
    this.timeout(120_000);
    const runs = TRIGGER_RULES.flatMap((rule) =>
      COMBOS.map((combo) => ({ dagId: `rule_${rule}`, runId: `r_${combo}`, conf: { up_a: OUTCOME[combo[0] as 's'], up_b: OUTCOME[combo[1] as 's'] } })),
    );
    await runAll(runs, 100_000);
    const mismatches: string[] = [];
    for (const rule of TRIGGER_RULES) {
      const runState = await runStates(`rule_${rule}`);
      for (const [i, combo] of COMBOS.entries()) {
        const expected = STATE[EXPECTED[rule][i] as keyof typeof STATE];
        const probe = (await states(`rule_${rule}`, `r_${combo}`))['probe'];
        if (probe !== expected) mismatches.push(`${rule} ${combo}: probe ${probe}, expected ${expected}`);
        // probe is the only leaf: the run fails exactly when it is upstream_failed, whatever failed above it.
        const run = runState.get(`r_${combo}`);
        if (run !== (expected === 'upstream_failed' ? 'failed' : 'success')) mismatches.push(`${rule} ${combo}: run ${run}`);
      }
    }
    expect(mismatches).to.deep.equal([]);
  });

  it('a branch skips the direct downstream it does not follow; skips propagate by each task\'s rule; the join runs', async function () {
    this.timeout(60_000);
    await runAll([
      { dagId: 'branching', runId: 'follow_a', conf: { follow: 'a' } },
      { dagId: 'branching', runId: 'follow_b', conf: { follow: ['b'] } },
      { dagId: 'branching', runId: 'follow_join', conf: { follow: 'join' } },
      { dagId: 'branching', runId: 'follow_none', conf: { follow: null } },
      { dagId: 'branching', runId: 'follow_unknown', conf: { follow: ['a', 'no_such_task'] } },
    ]);
    expect(await states('branching', 'follow_a')).to.deep.equal({
      branch: 'success', a: 'success', b: 'skipped', b_next: 'skipped', join: 'success', join_all: 'skipped',
    });
    expect(await states('branching', 'follow_b')).to.deep.equal({
      branch: 'success', a: 'skipped', b: 'success', b_next: 'success', join: 'success', join_all: 'skipped',
    });
    // The empty branch: straight to the join, which runs on the branch's success alone.
    expect(await states('branching', 'follow_join')).to.deep.equal({
      branch: 'success', a: 'skipped', b: 'skipped', b_next: 'skipped', join: 'success', join_all: 'skipped',
    });
    expect(await states('branching', 'follow_none')).to.deep.equal({
      branch: 'success', a: 'skipped', b: 'skipped', b_next: 'skipped', join: 'skipped', join_all: 'skipped',
    });
    const unknown = await states('branching', 'follow_unknown');
    expect(unknown['branch']).to.equal('failed');
    expect(unknown['a']).to.equal('upstream_failed');
    const runs = await runStates('branching');
    expect(Object.fromEntries(runs)).to.deep.equal({ follow_a: 'success', follow_b: 'success', follow_join: 'success', follow_none: 'success', follow_unknown: 'failed' });
    const { rows } = await sql<{ value: unknown }>`
      SELECT value FROM xcom WHERE dag_id = 'branching' AND run_id = 'follow_a' AND task_id = 'branch' AND key = 'return_value'`.execute(t.database.db);
    expect(rows.map((r) => r.value), 'the followed ids are the branch\'s return value').to.deep.equal([['a']]);
  });

  it('ShortCircuitOperator: truthy continues; falsy skips everything downstream, or only the direct tasks with ignoreDownstreamTriggerRules: false', async function () {
    this.timeout(60_000);
    await runAll([
      { dagId: 'short_circuit_all', runId: 'go', conf: { go: true } },
      { dagId: 'short_circuit_all', runId: 'stop', conf: { go: false } },
      { dagId: 'short_circuit_direct', runId: 'go', conf: { go: 'yes' } },
      { dagId: 'short_circuit_direct', runId: 'stop', conf: { go: 0 } },
    ]);
    expect(await states('short_circuit_all', 'go')).to.deep.equal({ check: 'success', direct: 'success', later: 'success' });
    expect(await states('short_circuit_all', 'stop')).to.deep.equal({ check: 'success', direct: 'skipped', later: 'skipped' });
    expect(await states('short_circuit_direct', 'go')).to.deep.equal({ check: 'success', direct: 'success', later: 'success' });
    // Only `direct` is skipped: `later` follows its own rule (all_done) and runs.
    expect(await states('short_circuit_direct', 'stop')).to.deep.equal({ check: 'success', direct: 'skipped', later: 'success' });
    for (const dagId of ['short_circuit_all', 'short_circuit_direct']) {
      expect(Object.fromEntries(await runStates(dagId)), dagId).to.deep.equal({ go: 'success', stop: 'success' });
    }
  });

  it('LatestOnlyOperator in a caught-up daily DAG: only the latest scheduled run does the work; a manual run does it too', async function () {
    this.timeout(60_000);
    await t.database.db.updateTable('dag').set({ is_paused: false }).where('dag_id', '=', 'latest_only').execute();
    await eventually(async () => {
      const runs = await runStates('latest_only');
      return runs.size === 3 && [...runs.values()].every((s) => s === 'success');
    }, 'three caught-up runs to succeed', 45_000);
    const { rows } = await sql<{ run_id: string; work: string; after: string }>`
      SELECT r.run_id, w.state AS work, a.state AS after FROM dag_run r
      JOIN task_instance w ON w.dag_id = r.dag_id AND w.run_id = r.run_id AND w.task_id = 'work'
      JOIN task_instance a ON a.dag_id = r.dag_id AND a.run_id = r.run_id AND a.task_id = 'after'
      WHERE r.dag_id = 'latest_only' ORDER BY r.logical_date`.execute(t.database.db);
    expect(rows.map((r) => [r.work, r.after])).to.deep.equal([
      ['skipped', 'skipped'],
      ['skipped', 'skipped'],
      ['success', 'success'],
    ]);
    await runAll([{ dagId: 'latest_only', runId: 'by_hand', conf: {} }]);
    expect(await states('latest_only', 'by_hand')).to.deep.equal({ latest_only: 'success', work: 'success', after: 'success' });
  });

  it('a branch\'s skips land with its success in one fenced statement, and only on task instances not started', async function () {
    await stopAll(); // no scheduler: the rows are moved by hand
    const runId = await createRun(t.database, bag.getDag('branching'), 'by_hand');
    const key = (taskId: string) => ({ dagId: 'branching', runId, taskId });
    const set = (taskId: string, state: 'queued' | 'scheduled') =>
      t.database.db.updateTable('task_instance').set({ state }).where('dag_id', '=', 'branching').where('run_id', '=', runId).where('task_id', '=', taskId).execute();
    await set('branch', 'queued');
    const started = await startTry(t.database.db, key('branch'), { hostname: 'test', pid: process.pid });
    await set('a', 'queued'); // already handed to an executor: left alone
    await set('b', 'scheduled'); // not queued yet: skipped
    // A stale try (another try number) lands nothing, skips included.
    expect(await finishTry(t.database.db, key('branch'), started.row.try_number + 1, { state: 'success', skipTaskIds: ['a', 'b', 'join'] })).to.equal(false);
    expect(await states('branching', runId)).to.include({ branch: 'running', b: 'scheduled', join: null });
    expect(await finishTry(t.database.db, key('branch'), started.row.try_number, { state: 'success', skipTaskIds: ['a', 'b', 'join'] })).to.equal(true);
    expect(await states('branching', runId)).to.deep.equal({ branch: 'success', a: 'queued', b: 'skipped', b_next: null, join: 'skipped', join_all: null });
  });

  it('a branch run by a worker process (LocalExecutor) skips the same tasks', async function () {
    this.timeout(90_000);
    await stopAll();
    ({ scheduler } = await startScheduler(t.database, bag, { pollIntervalMs: 1000 }, localExecutor(t.database, { parallelism: 2, worker: { dagsFolder: FOLDER } })));
    await runAll([{ dagId: 'branching', runId: 'in_worker', conf: { follow: 'b' } }], 80_000);
    expect(await states('branching', 'in_worker')).to.deep.equal({
      branch: 'success', a: 'skipped', b: 'success', b_next: 'success', join: 'success', join_all: 'skipped',
    });
  });
});
