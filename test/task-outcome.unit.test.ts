import { expect } from 'chai';
import { DateTime } from 'luxon';
import { silentLogger } from '../src/common/logger.ts';
import { describeError, invoke, returned, thrown } from '../src/runner/task-outcome.ts';
import { BaseOperator } from '../src/sdk/base-operator.ts';
import type { TaskContext } from '../src/sdk/context.ts';
import { dag } from '../src/sdk/dag.ts';
import { FailTask, RescheduleTask, SensorTimeout, SkipTask } from '../src/sdk/errors.ts';
import { TaskDeferred } from '../src/sdk/task-deferred.ts';
import { TimeDeltaTrigger } from '../triggers/index.ts';

/** Runs `body` as its execute, or as the method it resumes in. */
class Scripted extends BaseOperator {
  body: (context: TaskContext) => unknown = () => undefined;
  override execute(context: TaskContext): unknown {
    return this.body(context);
  }
  resumeHere(context: TaskContext): unknown {
    return this.body(context);
  }
}

describe('the runner turns what a task did into an outcome', () => {
  const flow = dag({ dagId: 'outcomes' }, () => {
    new Scripted({ taskId: 'task' });
  });
  const task = flow.getTask('task') as Scripted;
  const fresh = { next_method: null, next_kwargs: null };

  function context(signal: AbortSignal): TaskContext {
    return { signal, log: silentLogger() } as unknown as TaskContext;
  }

  function run(body: (context: TaskContext) => unknown, signal = new AbortController().signal) {
    task.body = body;
    return invoke(task, context(signal), fresh, signal);
  }

  it("a deferral, a skip and a reschedule are outcomes, not failures", async () => {
    const trigger = new TimeDeltaTrigger({ delta: { minutes: 1 } });
    const deferred = await run(() => task.defer({ trigger, method: 'resumeHere' })).outcome;
    expect(deferred.kind).to.equal('deferred');
    expect(deferred.kind === 'deferred' && deferred.deferral.method).to.equal('resumeHere');

    const at = DateTime.utc().plus({ minutes: 5 });
    expect(await run(() => Promise.reject(new RescheduleTask(at))).outcome).to.deep.equal({ kind: 'rescheduled', at });
    expect(await run(() => {
      throw new SkipTask('nothing to do today');
    }).outcome).to.deep.equal({ kind: 'skipped', message: 'SkipTask: nothing to do today' });
  });

  it('only genuine errors fail, and FailTask (or a sensor timeout) fails without retries', async () => {
    const boom = new Error('boom');
    expect(await run(() => Promise.reject(boom)).outcome).to.deep.equal({ kind: 'failed', error: boom, retryable: true });
    const fatal = new FailTask('stop now');
    expect(thrown(fatal)).to.deep.equal({ kind: 'failed', error: fatal, retryable: false });
    const timeout = new SensorTimeout('waited too long');
    expect(thrown(timeout)).to.deep.equal({ kind: 'failed', error: timeout, retryable: false });
    expect(thrown('a string')).to.deep.equal({ kind: 'failed', error: 'a string', retryable: true });
  });

  it('recognises a deferral from another copy of the SDK by its brand', () => {
    const foreign = Object.create(TaskDeferred.prototype) as TaskDeferred;
    expect(thrown(foreign).kind).to.equal('deferred');
  });

  it('a returned value becomes the JSON it is stored as; one that cannot be stored fails the try', async () => {
    expect(await run(() => ({ when: new Date('2026-01-02T03:04:05Z') })).outcome).to.deep.equal({ kind: 'value', value: { when: '2026-01-02T03:04:05.000Z' } });
    expect(await run(() => undefined).outcome).to.deep.equal({ kind: 'value', value: undefined });
    const nul = returned({ text: 'a\u0000b' }, 'task');
    expect(nul.kind).to.equal('failed');
    expect(nul.kind === 'failed' && describeError(nul.error)).to.contain('contains a NUL character');
    // The text "\u0000" (a backslash, then u0000) is not a NUL and is stored as it is.
    expect(returned({ text: '\\u0000' }, 'task')).to.deep.equal({ kind: 'value', value: { text: '\\u0000' } });
  });

  it('a task told to stop before it starts is not started; one that ignores the stop is reported unsettled', async () => {
    let calls = 0;
    const stopped = new AbortController();
    stopped.abort(new Error('the worker was stopped'));
    const early = run(() => calls++, stopped.signal);
    expect(await early.outcome).to.include({ kind: 'failed', retryable: true });
    expect(calls).to.equal(0);

    const later = new AbortController();
    const hung = run(() => new Promise(() => undefined), later.signal);
    later.abort(new Error('executionTimeout'));
    const outcome = await hung.outcome;
    expect(outcome.kind === 'failed' && (outcome.error as Error).message).to.equal('executionTimeout');
    expect(hung.settled).to.equal(false);
  });

  it('an error message loses its NUL characters, which PostgreSQL text cannot hold', () => {
    expect(describeError(new Error('bad\u0000byte'))).to.equal('Error: bad\\0byte');
  });
});
