import { expect } from 'chai';
import { DagSpec, serializeDag } from '../src/dag-bag/serialized-dag.ts';
import { tiKeyString } from '../src/db/schema.ts';
import { jobKey } from '../src/graphile/task-jobs.ts';
import { taskInstanceSpecs } from '../src/scheduler/task-mapping.ts';
import { pickCombination } from '../src/sdk/mapped-operator.ts';
import { BashOperator, dag, MappedOperator, task, taskGroup, type TaskContext } from '../src/sdk/index.ts';

const double = task({ taskId: 'double' }, (_ctx: TaskContext, args: { x: number }) => args.x * 2);

describe('dynamic task mapping (unit)', () => {
  it('numbers the product of several lists with the last varying fastest (Airflow\'s order)', () => {
    const lists = [[1, 2], ['x', 'y', 'z']];
    expect(Array.from({ length: 6 }, (_, i) => pickCombination(lists, i).join(''))).to.deep.equal(['1x', '1y', '1z', '2x', '2y', '2z']);
  });

  it('keys a mapped task instance by its map index; unmapped keys and job keys read as before', () => {
    expect(tiKeyString({ dagId: 'd', runId: 'r', taskId: 't' })).to.equal('d/r/t');
    expect(tiKeyString({ dagId: 'd', runId: 'r', taskId: 't', mapIndex: -1 })).to.equal('d/r/t');
    expect(tiKeyString({ dagId: 'd', runId: 'r', taskId: 't', mapIndex: 7 })).to.equal('d/r/t[7]');
    expect(jobKey({ dagId: 'd', runId: 'r', taskId: 't' }, 2)).to.equal('d/r/t#2');
    expect(jobKey({ dagId: 'd', runId: 'r', taskId: 't', mapIndex: 7 }, 2)).to.equal('d/r/t[7]#2');
  });

  it('serializes where the map indexes come from; a run starts with one task instance per literal map index', () => {
    const d = dag({ dagId: 'shapes' }, () => {
      const source = task({ taskId: 'source' }, () => [1, 2, 3]);
      BashOperator.partial({ taskId: 'echo', retries: 2 }).expand({ bashCommand: ['echo 1', 'echo 2'] });
      double.override({ taskId: 'from_xcom' }).expand({ x: source() });
      double.override({ taskId: 'product' }).expandKwargs([{ x: 1 }, { x: 2 }, { x: 3 }]);
      double.override({ taskId: 'empty' }).expand({ x: [] });
      taskGroup('group', () => {
        double.expand({ x: [4] });
      });
    });
    const spec = new DagSpec(serializeDag(d, ''));
    expect(spec.tasks.get('echo')?.mapped).to.deep.equal({ kind: 'dict', sources: [{ literal: 2 }] });
    expect(spec.tasks.get('echo')?.retries).to.equal(2);
    expect(spec.tasks.get('from_xcom')?.mapped).to.deep.equal({ kind: 'dict', sources: [{ xcom: { taskId: 'source', key: 'return_value' } }] });
    expect(spec.tasks.get('from_xcom')?.upstream).to.deep.equal(['source']);
    expect(spec.tasks.get('from_xcom')?.operator).to.equal('TaskFlowOperator');
    expect(spec.tasks.get('product')?.mapped).to.deep.equal({ kind: 'list', sources: [{ literal: 3 }] });
    expect(spec.tasks.get('source')?.mapped).to.equal(undefined);
    expect(d.getTask('group.double')).to.be.instanceOf(MappedOperator);
    const specs = taskInstanceSpecs(spec).map((s) => [s.taskId, s.mapIndex ?? -1, s.state ?? null]);
    expect(specs).to.deep.equal([
      ['echo', 0, null],
      ['echo', 1, null],
      ['source', -1, null],
      ['from_xcom', -1, null],
      ['product', 0, null],
      ['product', 1, null],
      ['product', 2, null],
      ['empty', -1, 'skipped'],
      ['group.double', 0, null],
    ]);
  });

  it('refuses what cannot be mapped, naming the task and the option', () => {
    const attempt = (define: () => void) => () => dag({ dagId: `bad_${Math.random().toString(36).slice(2)}` }, define);
    expect(attempt(() => BashOperator.partial({ taskId: 'e' }).expand({ bashCommand: 'echo' as unknown as string[] }))).to.throw(/mapped task 'e': expand\(\{ bashCommand \}\) needs a list/);
    expect(attempt(() => BashOperator.partial({ taskId: 'e' }).expand({}))).to.throw(/needs at least one option/);
    expect(attempt(() => double.expandKwargs(5 as unknown as { x: number }[]))).to.throw(/expandKwargs\(\) needs a list of objects/);
    expect(attempt(() => BashOperator.partial({ taskId: 'e', maxActiveTisPerDag: 0 }).expand({ bashCommand: ['echo'] }))).to.throw(/maxActiveTisPerDag must be a whole number ≥ 1/);
  });
});
