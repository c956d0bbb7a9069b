import { expect } from 'chai';
import sinon from 'sinon';
import { backoffMs, Wakeup } from '../src/common/wakeup.ts';
import { turn } from './support/unit.ts';

describe('Wakeup (unit, fake clock)', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
  });
  afterEach(() => clock.restore());

  /** The value of `promise` if it has settled within a turn of the event loop, else 'pending'. */
  async function settled<T>(promise: Promise<T>): Promise<T | 'pending'> {
    let value: T | 'pending' = 'pending';
    void promise.then((v) => (value = v));
    await turn();
    return value;
  }

  it('resolves true as soon as it is nudged', async () => {
    const wakeup = new Wakeup();
    const waiting = wakeup.wait(60_000);
    expect(await settled(waiting)).to.equal('pending');
    wakeup.nudge();
    expect(await settled(waiting)).to.equal(true);
    expect(clock.countTimers(), 'its timer is cleared').to.equal(0);
  });

  it('remembers a nudge that came while nobody waited, once', async () => {
    const wakeup = new Wakeup();
    wakeup.nudge();
    wakeup.nudge();
    expect(await settled(wakeup.wait(60_000))).to.equal(true);
    const next = wakeup.wait(60_000);
    expect(await settled(next), 'two nudges before a wait wake it once').to.equal('pending');
    wakeup.nudge();
    await next;
  });

  it('resolves false when the time is up without a nudge', async () => {
    const wakeup = new Wakeup();
    const waiting = wakeup.wait(1_000);
    await clock.tickAsync(999);
    expect(await settled(waiting)).to.equal('pending');
    await clock.tickAsync(1);
    expect(await settled(waiting)).to.equal(false);
  });

  it('resolves false when its signal aborts, or at once if it already has', async () => {
    const wakeup = new Wakeup();
    const stop = new AbortController();
    const waiting = wakeup.wait(60_000, stop.signal);
    stop.abort();
    expect(await settled(waiting)).to.equal(false);
    expect(clock.countTimers()).to.equal(0);
    expect(await settled(wakeup.wait(60_000, stop.signal))).to.equal(false);
    expect(clock.countTimers(), 'no timer for an aborted wait').to.equal(0);
  });

  it('a nudge during an aborted wait is not lost for the next one', async () => {
    const wakeup = new Wakeup();
    const stop = new AbortController();
    stop.abort();
    wakeup.nudge();
    expect(await settled(wakeup.wait(60_000, stop.signal)), 'the pending nudge is reported').to.equal(true);
  });

  it('backoffMs stays within 0 … min(cap, base · 2^attempt)', () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const delay = backoffMs(attempt, 100, 10_000);
      expect(delay).to.be.at.least(0).and.at.most(Math.min(10_000, 100 * 2 ** attempt));
    }
  });
});
