import { expect } from 'chai';
import { DateTime } from 'luxon';
import sinon from 'sinon';
import { DateTimeTrigger, TimeDeltaTrigger } from '../triggers/index.ts';

describe('time triggers', () => {
  describe('with a fake clock', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ now: Date.parse('2026-03-01T12:00:00Z'), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    });
    afterEach(() => clock.restore());

    it('fires exactly at the moment, not before', async () => {
      const trigger = new DateTimeTrigger({ moment: '2026-03-01T12:00:10.250Z' });
      let event: unknown;
      void trigger.run(new AbortController().signal).then((e) => (event = e?.payload));
      await clock.tickAsync(10_249);
      expect(event).to.equal(undefined);
      await clock.tickAsync(1);
      expect(event).to.deep.equal({ moment: '2026-03-01T12:00:10.250Z', firedAt: '2026-03-01T12:00:10.250Z' });
    });

    it('fires at once for a moment in the past', async () => {
      const event = await new DateTimeTrigger({ moment: '2020-01-01T00:00:00Z' }).run(new AbortController().signal);
      expect(event?.payload).to.have.property('firedAt', '2026-03-01T12:00:00.000Z');
    });

    it('waits again when the wall clock is set back while it sleeps', async () => {
      const trigger = new DateTimeTrigger({ moment: '2026-03-01T12:01:00Z' });
      let fired = false;
      void trigger.run(new AbortController().signal).then(() => (fired = true));
      await clock.tickAsync(30_000);
      clock.setSystemTime(Date.parse('2026-03-01T12:00:00Z')); // NTP steps the clock back 30 s
      await clock.tickAsync(30_000);
      expect(fired, 'not yet: the moment is still 30 s away on the wall clock').to.equal(false);
      await clock.tickAsync(30_000);
      expect(fired).to.equal(true);
    });

    it('stops without an event when cancelled', async () => {
      const controller = new AbortController();
      const result = new DateTimeTrigger({ moment: '2026-03-01T13:00:00Z' }).run(controller.signal);
      await clock.tickAsync(1000);
      controller.abort();
      expect(await result).to.equal(undefined);
    });

    it('serialises a TimeDeltaTrigger as the absolute moment, so a restart never extends the wait', () => {
      const [classpath, kwargs] = new TimeDeltaTrigger({ delta: { minutes: 5 } }).serialize();
      expect(classpath).to.equal('tsflow.triggers.DateTimeTrigger');
      expect(kwargs).to.deep.equal({ moment: '2026-03-01T12:05:00.000Z' });
      clock.tick(60_000);
      const rebuilt = new DateTimeTrigger(kwargs as { moment: string });
      expect(rebuilt.dueAt().toISO()).to.equal('2026-03-01T12:05:00.000Z');
    });
  });

  it('refuses bad kwargs, naming the field', () => {
    expect(() => new DateTimeTrigger({ moment: 'tomorrow' })).to.throw(/DateTimeTrigger moment "tomorrow" is not a valid date-time/);
    expect(() => new DateTimeTrigger({} as never)).to.throw(/DateTimeTrigger moment is required/);
    expect(() => new TimeDeltaTrigger({ delta: -1 })).to.throw(/TimeDeltaTrigger delta must not be negative/);
  });

  it('fires at its moment on the real clock, never before it', async () => {
    const moment = DateTime.utc().plus({ milliseconds: 300 });
    const event = await new DateTimeTrigger({ moment }).run(new AbortController().signal);
    const lateness = Date.parse(String((event?.payload as { firedAt: string }).firedAt)) - moment.toMillis();
    // How precisely is a benchmark's business (bench/ spread); the fake-clock tests above pin the moment.
    expect(lateness).to.be.at.least(0);
  });
});
