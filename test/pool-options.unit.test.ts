import { expect } from 'chai';
import { DagSpec, serializeDag, type SerializedDag } from '../src/dag-bag/serialized-dag.ts';
import { InvalidPoolError, validatePool } from '../src/db/pools.ts';
import { BaseOperator, dag, DEFAULT_POOL, type TaskDefaults } from '../src/sdk/index.ts';

class Noop extends BaseOperator {
  override execute(): void {}
}

function taskWith(options: TaskDefaults, defaultArgs: TaskDefaults = {}): Noop {
  let task: Noop | undefined;
  dag({ dagId: 'pool_opts', schedule: null, defaultArgs }, () => {
    task = new Noop({ taskId: 'pooled', ...options });
  });
  return task!;
}

describe('pool and poolSlots task options (unit)', () => {
  it('default to default_pool and 1 slot', () => {
    expect(taskWith({}).settings).to.include({ pool: DEFAULT_POOL, poolSlots: 1 });
    expect(DEFAULT_POOL).to.equal('default_pool');
  });

  it('come from the task, else from the DAG’s defaultArgs', () => {
    expect(taskWith({ pool: 'db', poolSlots: 3 }).settings).to.include({ pool: 'db', poolSlots: 3 });
    expect(taskWith({}, { pool: 'shared', poolSlots: 2 }).settings).to.include({ pool: 'shared', poolSlots: 2 });
    expect(taskWith({ poolSlots: 4 }, { pool: 'shared', poolSlots: 2 }).settings).to.include({ pool: 'shared', poolSlots: 4 });
  });

  for (const bad of [0, -1, 1.5, Number.NaN]) {
    it(`refuse poolSlots ${bad}, naming the task and the field`, () => {
      expect(() => taskWith({ poolSlots: bad })).to.throw(RangeError, /task 'pooled': poolSlots must be a whole number ≥ 1, got/);
    });
  }

  it('refuse an empty pool name', () => {
    expect(() => taskWith({ pool: '' })).to.throw(TypeError, /task 'pooled': pool must be a non-empty pool name/);
  });

  it('are serialized, and a task serialized before pools reads as default_pool, 1 slot', () => {
    const d = dag({ dagId: 'ser', schedule: null }, () => {
      new Noop({ taskId: 'a', pool: 'db', poolSlots: 2 });
      new Noop({ taskId: 'b' });
    });
    const data = serializeDag(d, '/dags/ser.ts');
    expect(data.tasks.find((t) => t.taskId === 'a')).to.include({ pool: 'db', poolSlots: 2 });
    const old = { ...data, tasks: data.tasks.map(({ pool: _p, poolSlots: _s, ...rest }) => rest) } as unknown as SerializedDag;
    expect(new DagSpec(old).tasks.get('a')).to.include({ pool: DEFAULT_POOL, poolSlots: 1 });
  });
});

describe('validatePool (unit)', () => {
  it('accepts 0, a positive count and -1 (unlimited)', () => {
    for (const slots of [0, 5, -1]) expect(() => validatePool({ pool: 'p', slots })).not.to.throw();
  });
  it('refuses other negatives and fractions, naming the value', () => {
    expect(() => validatePool({ pool: 'p', slots: -2 })).to.throw(InvalidPoolError, /pool 'p': slots must be .* got -2/);
    expect(() => validatePool({ pool: 'p', slots: 2.5 })).to.throw(InvalidPoolError, /got 2\.5/);
    expect(() => validatePool({ pool: ' ', slots: 1 })).to.throw(InvalidPoolError, /cannot be empty/);
  });
});
