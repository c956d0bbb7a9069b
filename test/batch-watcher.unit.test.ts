import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../src/common/logger.ts';
import { judgeExternalStates, type ExternalRunState } from '../src/sdk/cross-dag.ts';
import { BatchWatcher } from '../src/triggerer/batch-watcher.ts';
import { turn, untilTurns } from './support/unit.ts';

/** A source whose reads the test answers one at a time. */
class Source {
  readonly reads: string[][] = [];
  readonly #pending: { resolve: (value: Map<string, number>) => void; reject: (error: Error) => void }[] = [];
  values = new Map<string, number>();

  read = (queries: readonly string[]): Promise<Map<string, number>> => {
    this.reads.push([...queries]);
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  };

  answer(): void {
    this.#pending.shift()?.resolve(new Map(this.values));
  }

  fail(): void {
    this.#pending.shift()?.reject(new Error('connection lost'));
  }

  get pending(): number {
    return this.#pending.length;
  }
}

const atLeast = (threshold: number) => (snapshot: Map<string, number>, key: string) => {
  const value = snapshot.get(key);
  return value !== undefined && value >= threshold ? value : undefined;
};

describe('BatchWatcher: many waits, one read per nudge', () => {
  let clock: sinon.SinonFakeTimers;
  let source: Source;
  let watcher: BatchWatcher<string, Map<string, number>>;

  beforeEach(() => {
    clock = sinon.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    source = new Source();
    watcher = new BatchWatcher({ read: source.read, pollIntervalMs: 30_000, log: silentLogger() });
  });
  afterEach(() => {
    watcher.close();
    clock.restore();
  });

  it('reads at once for a new wait, then only when nudged, covering every wait in one read', async () => {
    const signal = new AbortController().signal;
    const a = watcher.watch('a', atLeast(1), signal);
    const b = watcher.watch('b', atLeast(1), signal);
    await untilTurns(() => source.pending === 1, 'the first read');
    source.answer();
    // 'b' arrived while the first read ran: one more read covers both.
    await untilTurns(() => source.pending === 1 && source.reads.length === 2, 'the read for the second wait');
    expect(source.reads[1]).to.deep.equal(['a', 'b']);
    source.answer();
    await turn();
    expect(source.pending).to.equal(0);
    // Nothing happens without a nudge (short of the 30 s poll).
    await clock.tickAsync(29_000);
    expect(source.reads).to.have.length(2);
    source.values.set('a', 1);
    // Three nudges: the first starts a read, the two that come while it runs make ONE more read.
    watcher.nudge();
    watcher.nudge();
    watcher.nudge();
    await untilTurns(() => source.pending === 1, 'the nudged read');
    source.answer();
    expect(await a).to.equal(1);
    await untilTurns(() => source.pending === 1, 'the read the later nudges asked for');
    expect(source.reads[3]).to.deep.equal(['b']);
    source.answer();
    await turn();
    expect(source.reads).to.have.length(4);
    expect(watcher.size).to.equal(1);
    source.values.set('b', 2);
    watcher.nudge();
    await untilTurns(() => source.pending === 1, 'the next read');
    source.answer();
    expect(await b).to.equal(2);
  });

  it('polls when no nudge comes (a NOTIFY lost across a reconnect), and stops polling with no waits', async () => {
    const done = watcher.watch('a', atLeast(1), new AbortController().signal);
    await untilTurns(() => source.pending === 1, 'the first read');
    source.answer();
    source.values.set('a', 5);
    await clock.tickAsync(29_999);
    expect(source.pending).to.equal(0);
    await clock.tickAsync(1);
    await untilTurns(() => source.pending === 1, 'the poll');
    source.answer();
    expect(await done).to.equal(5);
    await clock.tickAsync(120_000);
    expect(source.reads).to.have.length(2);
  });

  it('retries a failed read soon, not at the next poll', async () => {
    const done = watcher.watch('a', atLeast(1), new AbortController().signal);
    await untilTurns(() => source.pending === 1, 'the first read');
    source.values.set('a', 1);
    source.fail();
    await turn();
    await clock.tickAsync(1000);
    await untilTurns(() => source.pending === 1, 'the retry');
    source.answer();
    expect(await done).to.equal(1);
  });

  it('resolves undefined when its signal aborts, and a judge that throws rejects only its own wait', async () => {
    const controller = new AbortController();
    const aborted = watcher.watch('a', atLeast(1), controller.signal);
    const broken = watcher.watch('b', () => {
      throw new Error('bad judge');
    }, new AbortController().signal);
    controller.abort();
    expect(await aborted).to.equal(undefined);
    await untilTurns(() => source.pending === 1, 'the first read');
    source.answer();
    await untilTurns(() => source.pending === 1, "the read for 'b', which came during the first");
    expect(source.reads[1]).to.deep.equal(['b']);
    source.answer();
    const error = await broken.then(() => undefined, (e: unknown) => e as Error);
    expect(error?.message).to.equal('bad judge');
    expect(watcher.size).to.equal(0);
  });
});

describe('judgeExternalStates (Airflow ExternalTaskSensor rules)', () => {
  const at = '2026-01-01T00:00:00.000Z';
  const run = (state: ExternalRunState['state'], tasks: ExternalRunState['tasks'] = {}, logicalDate = at): ExternalRunState => ({
    dagId: 'other',
    runId: `r_${state}`,
    logicalDate,
    state,
    tasks,
  });
  const criteria = { logicalDates: [at], allowedStates: ['success'], failedStates: ['failed'], skippedStates: ['skipped'] };

  it('judges whole runs', () => {
    expect(judgeExternalStates([], criteria)).to.equal(undefined);
    expect(judgeExternalStates([run('running')], criteria)).to.equal(undefined);
    expect(judgeExternalStates([run('success')], criteria)).to.equal('success');
    expect(judgeExternalStates([run('failed')], criteria)).to.equal('failed');
    // A run at another date does not count.
    expect(judgeExternalStates([run('success', {}, '2026-01-02T00:00:00Z')], criteria)).to.equal(undefined);
  });

  it('judges tasks: all allowed for success, any failed first, then any skipped', () => {
    const tasks = { ...criteria, taskIds: ['a', 'b'] };
    expect(judgeExternalStates([run('running', { a: 'success', b: null })], tasks)).to.equal(undefined);
    expect(judgeExternalStates([run('running', { a: 'success' })], tasks)).to.equal(undefined);
    expect(judgeExternalStates([run('running', { a: 'success', b: 'success' })], tasks)).to.equal('success');
    expect(judgeExternalStates([run('running', { a: 'skipped', b: 'failed' })], tasks)).to.equal('failed');
    expect(judgeExternalStates([run('running', { a: 'skipped', b: 'running' })], tasks)).to.equal('skipped');
  });

  it('needs every logical date', () => {
    const two = { ...criteria, logicalDates: [at, '2026-01-02T00:00:00Z'] };
    expect(judgeExternalStates([run('success')], two)).to.equal(undefined);
    expect(judgeExternalStates([run('success'), run('success', {}, '2026-01-02T00:00:00.000Z')], two)).to.equal('success');
  });
});
