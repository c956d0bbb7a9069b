import { expect } from 'chai';
import sinon from 'sinon';
import { TimeTable } from '../src/triggerer/time-table.ts';

/** Lets resolved promises' callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('TimeTable: one timer for every time trigger', () => {
  let clock: sinon.SinonFakeTimers;
  let table: TimeTable;

  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: Date.parse('2026-05-01T00:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    table = new TimeTable();
  });
  afterEach(() => {
    table.close();
    clock.restore();
  });

  it('releases waits in deadline order, each at its moment, on a single timer', async () => {
    const released: string[] = [];
    const signal = new AbortController().signal;
    for (const [name, at] of [['c', 3000], ['a', 1000], ['b', 2000]] as const) {
      void table.sleepUntil(Date.now() + at, signal).then(() => released.push(name));
    }
    expect(clock.countTimers(), 'one timer, not one per wait').to.equal(1);
    await clock.tickAsync(999);
    expect(released).to.deep.equal([]);
    await clock.tickAsync(1);
    expect(released).to.deep.equal(['a']);
    await clock.tickAsync(2000);
    expect(released).to.deep.equal(['a', 'b', 'c']);
    expect(table.size).to.equal(0);
  });

  it('releases a wait that is already due without a timer (a trigger deferred after its moment)', async () => {
    let released = false;
    void table.sleepUntil(Date.now() - 5, new AbortController().signal).then(() => (released = true));
    void table.sleepUntil(Date.now(), new AbortController().signal);
    expect(clock.countTimers(), 'no timer: Node would make even a 0 ms one wait at least 1 ms').to.equal(0);
    await settle();
    expect(released).to.equal(true);
    expect(table.size).to.equal(0);
  });

  it('resolves a wait at once when its signal aborts, and the others still fire', async () => {
    const aborted = new AbortController();
    const kept = new AbortController();
    let abortedDone = false;
    let keptDone = false;
    void table.sleepUntil(Date.now() + 5000, aborted.signal).then(() => (abortedDone = true));
    void table.sleepUntil(Date.now() + 5000, kept.signal).then(() => (keptDone = true));
    aborted.abort();
    await settle();
    expect(abortedDone).to.equal(true);
    expect(keptDone).to.equal(false);
    await clock.tickAsync(5000);
    expect(keptDone).to.equal(true);
  });

  it('adds one abort listener per signal, however often a trigger sleeps on it', async () => {
    const controller = new AbortController();
    const add = sinon.spy(controller.signal, 'addEventListener');
    for (let i = 1; i <= 5; i++) {
      const wait = table.sleepUntil(Date.now() + 10, controller.signal);
      await clock.tickAsync(10);
      await wait;
    }
    expect(add.callCount).to.equal(1);
  });

  it('releases a large batch due together a chunk per turn of the event loop', async () => {
    const signal = new AbortController().signal;
    let released = 0;
    for (let i = 0; i < 2500; i++) void table.sleepUntil(Date.now() + 100, signal).then(() => released++);
    clock.tick(100); // fires the one timer, synchronously
    for (let i = 0; i < 5; i++) await Promise.resolve(); // microtasks only: no event-loop turn yet
    expect(released, 'the first chunk only, before I/O gets a turn').to.equal(1000);
    await settle();
    expect(released, 'the next chunk on the next turn').to.equal(2000);
    await settle();
    expect(released).to.equal(2500);
  });

  it('sleeps again when the wall clock was set back, and notices one set forward within a minute', async () => {
    const signal = new AbortController().signal;
    let early = false;
    void table.sleepUntil(Date.now() + 10 * 60_000, signal).then(() => (early = true));
    clock.setSystemTime(Date.now() + 10 * 60_000); // NTP steps the clock forward 10 minutes
    await clock.tickAsync(60_000);
    expect(early, 'fired within the next minute').to.equal(true);

    let late = false;
    void table.sleepUntil(Date.now() + 30_000, signal).then(() => (late = true));
    await clock.tickAsync(15_000);
    clock.setSystemTime(Date.now() - 60_000); // stepped back a minute
    await clock.tickAsync(15_000);
    expect(late, 'not yet: still 60 s to go on the wall clock').to.equal(false);
    await clock.tickAsync(60_000);
    expect(late).to.equal(true);
  });
});
