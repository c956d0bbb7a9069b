import { expect } from 'chai';
import { serializeDag } from '../src/dag-bag/serialized-dag.ts';
import { BaseOperator, chain, dag, task, taskGroup, type TaskGroup } from '../src/sdk/index.ts';
import etl from './fixtures/taskflow-dags/etl.ts';

class Noop extends BaseOperator<null> {
  override execute(): null {
    return null;
  }
}

const upstreamOf = (d: ReturnType<typeof dag>, taskId: string): string[] => [...d.getTask(taskId).upstreamTaskIds].sort();

describe('task groups', () => {
  it('prefix their tasks and nested groups, and apply default args between the DAG and the task', () => {
    let outer!: TaskGroup, inner!: TaskGroup;
    const d = dag({ dagId: 'groups', defaultArgs: { retries: 1, queue: 'dag-queue' } }, () => {
      outer = taskGroup('extract', { defaultArgs: { retries: 3, priorityWeight: 5 } }, () => {
        new Noop({ taskId: 'load' });
        inner = taskGroup('files', { defaultArgs: { retries: 4 } }, () => {
          new Noop({ taskId: 'copy' });
          new Noop({ taskId: 'check', retries: 0 });
        });
      });
      taskGroup('flat', { prefixGroupId: false }, () => new Noop({ taskId: 'unprefixed' }));
    });
    expect([...d.tasks.keys()]).to.deep.equal(['extract.load', 'extract.files.copy', 'extract.files.check', 'unprefixed']);
    expect(inner.groupId).to.equal('extract.files');
    expect(outer.taskIds, 'a group holds its nested groups\' tasks').to.deep.equal(['extract.load', 'extract.files.copy', 'extract.files.check']);
    expect(d.getTask('extract.load').settings).to.include({ retries: 3, priorityWeight: 5, queue: 'dag-queue' });
    expect(d.getTask('extract.files.copy').settings, 'the inner group over the outer').to.include({ retries: 4, priorityWeight: 5 });
    expect(d.getTask('extract.files.check').settings.retries, 'the task over its groups').to.equal(0);
  });

  it('as a dependency, stand for their leaves (upstream) and roots (downstream)', () => {
    const d = dag({ dagId: 'group_deps' }, () => {
      const start = new Noop({ taskId: 'start' });
      const group = taskGroup('work', () => {
        const a = new Noop({ taskId: 'a' });
        const b = new Noop({ taskId: 'b' });
        const c = new Noop({ taskId: 'c' });
        a.setDownstream([b, c]);
      });
      const end = new Noop({ taskId: 'end' });
      group.setUpstream(start);
      group.setDownstream(end);
      const other = taskGroup('other', () => new Noop({ taskId: 'x' }));
      chain(group, other);
    });
    expect(upstreamOf(d, 'work.a'), 'start >> group wires the roots').to.deep.equal(['start']);
    expect(upstreamOf(d, 'work.b')).to.deep.equal(['work.a']);
    expect(upstreamOf(d, 'end'), 'group >> end wires the leaves').to.deep.equal(['work.b', 'work.c']);
    expect(upstreamOf(d, 'other.x'), 'chain(group, group)').to.deep.equal(['work.b', 'work.c']);
    const serialized = serializeDag(d, 'groups.ts').tasks.find((t) => t.taskId === 'end');
    expect(serialized?.upstream).to.deep.equal(['work.b', 'work.c']);
  });

  it('refuse a duplicate group id, an id with a dot, an empty group as a dependency, and use outside a DAG', () => {
    expect(() =>
      dag({ dagId: 'dup_group' }, () => {
        taskGroup('g', () => new Noop({ taskId: 'a' }));
        taskGroup('g', () => new Noop({ taskId: 'b' }));
      }),
    ).to.throw(/already has a task group 'g'/);
    expect(() => dag({ dagId: 'dot_group' }, () => taskGroup('a.b', () => undefined))).to.throw(/task group id "a.b" is not valid/);
    expect(() =>
      dag({ dagId: 'empty_group' }, () => {
        const empty = taskGroup('empty', () => undefined);
        empty.setDownstream(new Noop({ taskId: 'a' }));
      }),
    ).to.throw(/task group 'empty' of DAG 'empty_group' has no tasks/);
    expect(() => taskGroup('lonely', () => undefined)).to.throw(/outside a DAG/);
  });
});

describe('TaskFlow task functions (the DAG shape)', () => {
  it('create tasks whose XComArg arguments become their upstream, and serialize like any operator', () => {
    expect([...etl.tasks.keys()]).to.deep.equal(['extract', 'transform', 'load', 'report.stats', 'report.load', 'report.echo']);
    expect(upstreamOf(etl, 'transform')).to.deep.equal(['extract']);
    expect(upstreamOf(etl, 'load')).to.deep.equal(['transform']);
    expect(upstreamOf(etl, 'report.load')).to.deep.equal(['report.stats']);
    expect(upstreamOf(etl, 'report.echo')).to.deep.equal(['load']);
    expect(etl.getTask('extract').settings.retries).to.equal(1);
    const transform = serializeDag(etl, 'etl.ts').tasks.find((t) => t.taskId === 'transform');
    expect(transform).to.include({ operator: 'TaskFlowOperator' });
    expect(transform?.upstream).to.deep.equal(['extract']);
    expect(transform?.downstream).to.deep.equal(['load']);
  });

  it('number repeated calls name__1, name__2 (per group), and override() renames', () => {
    const add = task(function add(_ctx, a: number, b: number) {
      return a + b;
    });
    const d = dag({ dagId: 'dedup' }, () => {
      const one = add(1, 2);
      const two = add(one, 3);
      add(two, 4);
      add.override({ taskId: 'total' })(two, 5);
      taskGroup('g', () => add(1, 1));
    });
    expect([...d.tasks.keys()]).to.deep.equal(['add', 'add__1', 'add__2', 'total', 'g.add']);
    expect(upstreamOf(d, 'add__2')).to.deep.equal(['add__1']);
    expect(upstreamOf(d, 'total')).to.deep.equal(['add__1']);
  });

  it('wires XComArgs nested in arrays and objects, and XComArgs as dependencies', () => {
    const make = task({ taskId: 'make' }, () => 1);
    const sum = task({ taskId: 'sum' }, (_ctx, parts: { values: number[] }) => parts.values.length);
    const d = dag({ dagId: 'nested' }, () => {
      const a = make();
      const b = make();
      const s = sum({ values: [a, b] as unknown as number[] });
      const after = new Noop({ taskId: 'after' });
      s.setDownstream(after);
      chain(a, new Noop({ taskId: 'side' }));
    });
    expect(upstreamOf(d, 'sum')).to.deep.equal(['make', 'make__1']);
    expect(upstreamOf(d, 'after')).to.deep.equal(['sum']);
    expect(upstreamOf(d, 'side')).to.deep.equal(['make']);
  });

  it('explain a missing task id, a key of a task without multipleOutputs, and use outside a DAG', () => {
    expect(() => task((() => () => 1)())).to.throw(/task\(\) needs a taskId when its function has no name/);
    const one = task({ taskId: 'one' }, () => ({ a: 1 }));
    expect(() => dag({ dagId: 'keys' }, () => one().get('a'))).to.throw(/only a task with multipleOutputs: true/);
    expect(() => one()).to.throw(/created outside a DAG/);
  });
});
