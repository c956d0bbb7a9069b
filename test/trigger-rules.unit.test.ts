import { expect } from 'chai';
import { DateTime } from 'luxon';
import { DagSpec, serializeDag, type SerializedDag } from '../src/dag-bag/serialized-dag.ts';
import type { TaskInstanceState } from '../src/db/schema.ts';
import { countUpstream, decideTriggerRule, type RuleDecision } from '../src/scheduler/trigger-rules.ts';
import { BaseOperator, BranchOperator, dag, LatestOnlyOperator, TRIGGER_RULES, type TaskContext, type TriggerRule } from '../src/sdk/index.ts';
import { notFollowed } from '../src/sdk/operators/skip-downstream.ts';

class Noop extends BaseOperator {
  override execute(): void {}
}

/** Upstream outcomes, one letter each: s success, k skipped, f failed, u upstream_failed, r running, n no state yet. */
const LETTERS: Record<string, TaskInstanceState | null> = { s: 'success', k: 'skipped', f: 'failed', u: 'upstream_failed', r: 'running', n: null };
const states = (letters: string): (TaskInstanceState | null)[] => [...letters].map((l) => LETTERS[l] as TaskInstanceState | null);

/*
 * The table, from Airflow's TriggerRuleDep (flag_upstream_failed): for each rule, upstream outcomes →
 * what the task instance becomes. 'wait' leaves it without a state for a later pass.
 */
const TABLE: Record<TriggerRule, [string, RuleDecision][]> = {
  all_success: [['ss', 'scheduled'], ['sr', 'wait'], ['fr', 'upstream_failed'], ['us', 'upstream_failed'], ['ks', 'skipped'], ['kr', 'skipped'], ['kf', 'upstream_failed'], ['', 'scheduled']],
  all_failed: [['ff', 'scheduled'], ['fu', 'scheduled'], ['fr', 'wait'], ['fs', 'skipped'], ['fk', 'skipped'], ['rs', 'skipped']],
  all_done: [['sf', 'scheduled'], ['ku', 'scheduled'], ['sr', 'wait'], ['fn', 'wait']],
  all_skipped: [['kk', 'scheduled'], ['kr', 'wait'], ['ks', 'skipped'], ['kf', 'skipped'], ['ku', 'skipped']],
  one_success: [['sr', 'scheduled'], ['fs', 'scheduled'], ['fr', 'wait'], ['kk', 'skipped'], ['kf', 'upstream_failed'], ['ff', 'upstream_failed']],
  one_failed: [['fr', 'scheduled'], ['ur', 'scheduled'], ['sr', 'wait'], ['sk', 'skipped'], ['ss', 'skipped']],
  one_done: [['sr', 'scheduled'], ['fr', 'scheduled'], ['kr', 'wait'], ['kk', 'skipped'], ['ku', 'skipped']],
  none_failed: [['sk', 'scheduled'], ['kk', 'scheduled'], ['sr', 'wait'], ['fr', 'upstream_failed'], ['us', 'upstream_failed']],
  none_failed_min_one_success: [['sk', 'scheduled'], ['ss', 'scheduled'], ['kk', 'skipped'], ['kr', 'wait'], ['fs', 'upstream_failed'], ['ku', 'upstream_failed']],
  none_skipped: [['ss', 'scheduled'], ['sf', 'scheduled'], ['sr', 'wait'], ['kr', 'skipped'], ['sk', 'skipped']],
  always: [['', 'scheduled'], ['rn', 'scheduled'], ['ff', 'scheduled'], ['kk', 'scheduled']],
};

describe('trigger rules: the decision over upstream outcomes', () => {
  it('the table covers every rule', () => {
    expect(Object.keys(TABLE).sort()).to.deep.equal([...TRIGGER_RULES].sort());
  });

  for (const rule of TRIGGER_RULES) {
    for (const [upstream, expected] of TABLE[rule]) {
      it(`${rule}, upstream [${[...upstream].map((l) => LETTERS[l] ?? 'none').join(', ')}] → ${expected}`, () => {
        expect(decideTriggerRule(rule, countUpstream(states(upstream)))).to.equal(expected);
      });
    }
  }

  it('a task without upstream runs whatever its rule', () => {
    for (const rule of TRIGGER_RULES) expect(decideTriggerRule(rule, countUpstream([])), rule).to.equal('scheduled');
  });
});

describe('trigger rules: the option, checked when the DAG is built and serialized', () => {
  it('an unknown rule is an error naming the task, the value and the allowed rules', () => {
    expect(() =>
      dag({ dagId: 'bad_rule' }, () => {
        new Noop({ taskId: 'join', triggerRule: 'all_sucess' as TriggerRule });
      }),
    ).to.throw(TypeError, /task 'join': triggerRule "all_sucess" is not a trigger rule: use one of all_success, all_failed, .*always/);
  });

  it('is serialized for the scheduler, defaults to all_success, and comes from defaultArgs', () => {
    const d = dag({ dagId: 'rules', defaultArgs: { triggerRule: 'all_done' } }, () => {
      new Noop({ taskId: 'a' }).setDownstream(new Noop({ taskId: 'b', triggerRule: 'one_failed' }));
    });
    const plain = dag({ dagId: 'plain' }, () => new Noop({ taskId: 'x' }));
    const tasks = serializeDag(d, 'f.ts').tasks;
    expect(tasks.map((t) => [t.taskId, t.triggerRule])).to.deep.equal([['a', 'all_done'], ['b', 'one_failed']]);
    expect(serializeDag(plain, 'f.ts').tasks[0]!.triggerRule).to.equal('all_success');
  });

  it('a DAG serialized before trigger rules reads as all_success, and its leaves are known', () => {
    const data = serializeDag(dag({ dagId: 'old' }, () => new Noop({ taskId: 'a' }).setDownstream(new Noop({ taskId: 'b' }))), 'f.ts');
    const old = { ...data, tasks: data.tasks.map(({ triggerRule: _, ...t }) => t) } as unknown as SerializedDag;
    const spec = new DagSpec(old);
    expect(spec.tasks.get('b')!.triggerRule).to.equal('all_success');
    expect(spec.leafTaskIds).to.deep.equal(['b']);
    const newer = { ...data, tasks: data.tasks.map((t) => ({ ...t, triggerRule: 'all_done_setup_success' })) } as unknown as SerializedDag;
    expect(() => new DagSpec(newer)).to.throw(/serialized DAG 'old': task 'a' has trigger rule "all_done_setup_success", which this tsflow does not know/);
  });
});

describe('branching: which tasks a branch skips', () => {
  it('skips the direct downstream not followed, but not a join that a followed task leads to', () => {
    let branch!: BranchOperator;
    dag({ dagId: 'branchy' }, () => {
      branch = new BranchOperator({ taskId: 'branch', chooseBranch: () => 'a' });
      const [a, b, c, join] = ['a', 'b', 'c', 'join'].map((taskId) => new Noop({ taskId }));
      branch.setDownstream([a!, b!, c!, join!]);
      a!.setDownstream(join!);
      b!.setDownstream(join!);
    });
    expect(notFollowed(branch, ['a'])).to.deep.equal(['b', 'c']);
    expect(notFollowed(branch, ['a', 'c'])).to.deep.equal(['b']);
    expect(notFollowed(branch, [])).to.deep.equal(['a', 'b', 'c', 'join']);
  });

  it('an id that is not a task of the DAG fails the branch, naming it', async () => {
    let branch!: BranchOperator;
    dag({ dagId: 'wrong_branch' }, () => {
      branch = new BranchOperator({ taskId: 'branch', chooseBranch: () => ['a', 'nope'] });
      branch.setDownstream(new Noop({ taskId: 'a' }));
    });
    const context = { log: { info: () => undefined } } as unknown as TaskContext;
    let error: unknown;
    await branch.execute(context).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/branch task 'branch' returned ids that are neither tasks nor task groups of DAG 'wrong_branch': nope/);
  });
});

describe('LatestOnlyOperator: which runs proceed', () => {
  const now = DateTime.fromISO('2026-03-10T12:00:00Z', { zone: 'utc' });
  let latest!: LatestOnlyOperator;
  dag({ dagId: 'latest', schedule: '@daily', startDate: '2026-03-01T00:00:00Z', catchup: true }, () => {
    latest = new LatestOnlyOperator({ taskId: 'latest_only', now: () => now });
    latest.setDownstream([new Noop({ taskId: 'x' }), new Noop({ taskId: 'y' })]);
  });
  const contextFor = (day: string, runType = 'scheduled'): TaskContext => {
    const start = DateTime.fromISO(`${day}T00:00:00Z`, { zone: 'utc' });
    return { runType, dataIntervalStart: start, dataIntervalEnd: start.plus({ days: 1 }), log: { info: () => undefined } } as unknown as TaskContext;
  };

  it('the run whose interval ended last (before now, the next one not yet) proceeds', () => {
    expect(latest.chooseBranch(contextFor('2026-03-09'))).to.deep.equal(['x', 'y']);
  });

  it('an older scheduled run follows nothing; a manual one always proceeds', () => {
    expect(latest.chooseBranch(contextFor('2026-03-05'))).to.deep.equal([]);
    expect(latest.chooseBranch(contextFor('2026-03-05', 'manual'))).to.deep.equal(['x', 'y']);
  });
});
