import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import { Daemon } from '../src/daemon/daemon.ts';

/** A daemon that records its start-up and shutdown steps. */
class Recorder extends Daemon<Record<string, never>> {
  readonly steps: string[] = [];
  readonly #failAt: string | undefined;

  constructor(failAt?: string) {
    super('recorder', silentLogger());
    this.#failAt = failAt;
  }

  protected override async onStart(): Promise<void> {
    for (const name of ['first', 'second', 'third']) {
      if (name === this.#failAt) throw new Error(`${name} failed`);
      this.steps.push(`start ${name}`);
      this.onStop(name, () => {
        this.steps.push(`stop ${name}`);
        if (name === 'second' && this.#failAt === 'stop second') throw new Error('stop second failed');
      });
    }
  }
}

describe('the daemon skeleton', () => {
  it('undoes its start-up in reverse order, once, however often stop is called', async () => {
    const daemon = new Recorder();
    await Promise.all([daemon.start(), daemon.start()]);
    expect(daemon.state).to.equal('running');
    await Promise.all([daemon.stop(), daemon.stop()]);
    await daemon.stop();
    expect(daemon.steps).to.deep.equal(['start first', 'start second', 'start third', 'stop third', 'stop second', 'stop first']);
    expect(daemon.state).to.equal('stopped');
  });

  it('undoes what a failed start had done, and reports the start failure', async () => {
    const daemon = new Recorder('third');
    let failure: unknown;
    await daemon.start().catch((error: unknown) => (failure = error));
    expect((failure as Error).message).to.equal('third failed');
    expect(daemon.steps).to.deep.equal(['start first', 'start second', 'stop second', 'stop first']);
    expect(daemon.state).to.equal('stopped');
    await daemon.stop(); // nothing left to do
    expect(daemon.steps).to.have.length(4);
  });

  it('runs every shutdown step even when one fails, then reports the failure', async () => {
    const daemon = new Recorder('stop second');
    await daemon.start();
    let failure: unknown;
    await daemon.stop().catch((error: unknown) => (failure = error));
    expect(String((failure as Error).message)).to.contain('stop second failed');
    expect(daemon.steps.slice(3)).to.deep.equal(['stop third', 'stop second', 'stop first']);
  });

  it('refuses a second start after stop', async () => {
    const daemon = new Recorder();
    await daemon.start();
    await daemon.stop();
    await daemon.start().then(
      () => expect.fail('started twice'),
      () => undefined,
    );
  });
});

