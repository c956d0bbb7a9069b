import { expect } from 'chai';
import { BaseOperator, chain, dag, TaskDeferred, TimeDeltaSensor, TimeDeltaTrigger, type TaskContext } from '../src/sdk/index.ts';
import { toDuration } from '../src/sdk/duration.ts';
import { toJsonValue } from '../src/sdk/json.ts';

class Task extends BaseOperator<string> {
  override execute(): string {
    return 'ok';
  }
}

describe('the DAG authoring SDK', () => {
  it('registers operators created inside dag() and links them with chain and setDownstream', () => {
    let a!: Task, b!: Task, c!: Task, d!: Task;
    const d1 = dag({ dagId: 'etl', defaultArgs: { retries: 2 } }, () => {
      a = new Task({ taskId: 'a' });
      b = new Task({ taskId: 'b', retries: 0 });
      c = new Task({ taskId: 'c' });
      d = new Task({ taskId: 'd' });
      chain(a, [b, c]);
      b.setDownstream(d);
      d.setUpstream(c);
    });
    expect([...d1.tasks.keys()]).to.deep.equal(['a', 'b', 'c', 'd']);
    expect([...a.downstreamTaskIds]).to.deep.equal(['b', 'c']);
    expect([...d.upstreamTaskIds].sort()).to.deep.equal(['b', 'c']);
    expect(a.settings.retries, 'defaultArgs apply').to.equal(2);
    expect(b.settings.retries, 'the operator wins over defaultArgs').to.equal(0);
  });

  it('refuses an operator outside a DAG, a duplicate task id, an invalid id and a cycle', () => {
    expect(() => new Task({ taskId: 'lonely' })).to.throw(/outside a DAG/);
    expect(() => dag({ dagId: 'dup' }, () => [new Task({ taskId: 'x' }), new Task({ taskId: 'x' })])).to.throw(/already has a task 'x'/);
    expect(() => dag({ dagId: 'has space' }, () => undefined)).to.throw(/dagId "has space" is not valid/);
    expect(() =>
      dag({ dagId: 'cyclic' }, () => {
        const x = new Task({ taskId: 'x' });
        const y = new Task({ taskId: 'y' });
        chain(x, y, x);
      }),
    ).to.throw(/cycle: x >> y >> x/);
  });

  it('defer() throws TaskDeferred carrying the serialisable trigger, method, kwargs and timeout', () => {
    let op!: BaseOperator;
    dag({ dagId: 'd' }, () => {
      op = new Task({ taskId: 't' });
    });
    const before = Date.now();
    try {
      op.defer({ trigger: new TimeDeltaTrigger({ delta: 60 }), kwargs: { a: 1 }, timeout: { minutes: 5 } });
      expect.fail('defer returned');
    } catch (error) {
      expect(error).to.be.instanceOf(TaskDeferred);
      const deferred = error as TaskDeferred;
      expect(deferred.method).to.equal('executeComplete');
      expect(deferred.kwargs).to.deep.equal({ a: 1 });
      expect(deferred.timeout?.as('seconds')).to.equal(300);
      const [classpath, kwargs] = deferred.trigger.serialize();
      expect(classpath).to.equal('tsflow.triggers.DateTimeTrigger');
      // 60 s from when the trigger was built: between the clock read before defer() and now.
      expect(Date.parse(String(kwargs['moment']))).to.be.within(before + 60_000, Date.now() + 60_000);
    }
    expect(() => op.defer({ trigger: new TimeDeltaTrigger({ delta: 1 }), kwargs: { event: 1 } })).to.throw(/may not contain the key 'event'/);
    expect(() => op.defer({ trigger: new TimeDeltaTrigger({ delta: 1 }), kwargs: { f: (() => 1) as never } })).to.throw(/defer\(\) kwargs\.f is a function/);
    expect(() => op.defer({ trigger: {} as never })).to.throw(/needs a trigger/);
  });

  it('resumes at the named method with (context, event, kwargs)', () => {
    class Resumable extends BaseOperator<unknown> {
      override execute(): never {
        throw new Error('not called');
      }
      done(_c: TaskContext, event: unknown, kwargs: unknown) {
        return { event, kwargs };
      }
    }
    let op!: Resumable;
    dag({ dagId: 'r' }, () => {
      op = new Resumable({ taskId: 't' });
    });
    expect(op.resumeExecution({} as TaskContext, 'done', { k: 1, event: { e: 2 } })).to.deep.equal({ event: { e: 2 }, kwargs: { k: 1 } });
    expect(() => op.resumeExecution({} as TaskContext, 'missing', {})).to.throw(/has no such method/);
    expect(() => op.resumeExecution({} as TaskContext, '__fail__', { error: 'Trigger timeout', timeout: true })).to.throw(/Trigger timeout/).with.property('name', 'TaskDeferralTimeout');
  });

  it('validates sensor and duration options, naming the field', () => {
    expect(() => dag({ dagId: 's' }, () => new TimeDeltaSensor({ taskId: 'w', delta: -5 }))).to.throw(/sensor 'w' delta must not be negative/);
    expect(() => dag({ dagId: 's2' }, () => new TimeDeltaSensor({ taskId: 'w', delta: 5, mode: 'wait' as never }))).to.throw(/mode must be 'poke' or 'reschedule'/);
    expect(() => toDuration('five minutes', 'poke')).to.throw(/'five minutes' is not an ISO 8601 duration/);
    expect(toDuration(1.5, 'x').toMillis()).to.equal(1500);
    expect(toDuration('PT2M', 'x').as('seconds')).to.equal(120);
  });

  it('accepts only plain JSON where values are stored', () => {
    expect(toJsonValue({ a: [1, 'x', null, { b: true }], skip: undefined }, 'v')).to.deep.equal({ a: [1, 'x', null, { b: true }] });
    expect(toJsonValue(new Date(0), 'v')).to.equal('1970-01-01T00:00:00.000Z');
    expect(() => toJsonValue({ m: new Map() }, 'xcom')).to.throw(/xcom\.m is a Map/);
    expect(() => toJsonValue({ n: Number.NaN }, 'xcom')).to.throw(/xcom\.n is NaN/);
    expect(() => toJsonValue({ n: 1n }, 'xcom')).to.throw(/bigint/);
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(() => toJsonValue(cyclic, 'xcom')).to.throw(/cycle/);
  });
});
