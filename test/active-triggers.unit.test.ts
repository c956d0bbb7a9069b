import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../src/common/logger.ts';
import { sleepUntil } from '../src/common/sleep.ts';
import type { ClaimedTrigger } from '../src/db/triggers.ts';
import type { JsonObject } from '../src/sdk/json.ts';
import { BaseTrigger, TriggerEvent, type TriggerClass } from '../src/sdk/trigger.ts';
import { ActiveTriggers, MAX_FAILURE_TEXT, type ActiveOutcome } from '../src/triggerer/active-triggers.ts';
import { TriggerNotFoundError } from '../src/triggerer/trigger-registry.ts';
import type { TriggererEvents } from '../src/triggerer/triggerer-events.ts';
import { untilTurns } from './support/unit.ts';

/*
 * ActiveTriggers with its collaborators replaced by plain objects: a registry of the classes below,
 * a writer that records what it is handed, and a list of the lifecycle events. No database.
 */

/** Fires at once with its kwargs as the payload. */
class FireTrigger extends BaseTrigger {
  static override readonly classpath: string = 'unit.Fire';
  override async run(): Promise<TriggerEvent> {
    return new TriggerEvent(this.kwargs);
  }
}

/** Throws whatever `throwers[kwargs.what]` makes. */
const throwers: Record<string, () => unknown> = {
  plainObject: () => ({ code: 7, reason: 'not an Error' }),
  unprintable: () => {
    const circular: Record<string, unknown> = { toString: null };
    circular['self'] = circular;
    return circular;
  },
  huge: () => new Error('x'.repeat(1024 * 1024)),
  unstorable: () => new Error('bad byte \u0000 and half \uD800 of a pair'),
};
class ThrowTrigger extends BaseTrigger {
  static override readonly classpath: string = 'unit.Throw';
  override async run(): Promise<TriggerEvent> {
    throw throwers[String(this.kwargs['what'])]?.();
  }
}

/** Its run() throws before it returns anything. */
class SyncThrowTrigger extends BaseTrigger {
  static override readonly classpath: string = 'unit.SyncThrow';
  override run(): Promise<TriggerEvent> {
    throw new Error('threw synchronously');
  }
}

/** What the cleanups did, by trigger kind. */
const cleaned: string[] = [];

/** Waits until cancelled, then ends without an event; records its cleanup. */
class PoliteTrigger extends BaseTrigger {
  static override readonly classpath: string = 'unit.Polite';
  override async run(signal: AbortSignal): Promise<undefined> {
    await sleepUntil(Number.MAX_SAFE_INTEGER, signal);
    return undefined;
  }
  override async cleanup(): Promise<void> {
    cleaned.push(`polite ${String(this.kwargs['n'])}`);
  }
}

/** Ignores its signal and never ends; records its cleanup. */
class StubbornTrigger extends BaseTrigger {
  static override readonly classpath: string = 'unit.Stubborn';
  override run(): Promise<undefined> {
    return new Promise(() => undefined);
  }
  override cleanup(): void {
    cleaned.push('stubborn');
  }
}

/** Fires, and has a cleanup that must finish before the event is handed on. */
class FireWithCleanupTrigger extends FireTrigger {
  static override readonly classpath: string = 'unit.FireWithCleanup';
  override async cleanup(): Promise<void> {
    await Promise.resolve();
    cleaned.push('fire');
  }
}

const CLASSES = new Map<string, TriggerClass>(
  [FireTrigger, ThrowTrigger, SyncThrowTrigger, PoliteTrigger, StubbornTrigger, FireWithCleanupTrigger].map((cls) => [cls.classpath, cls]),
);

type Emitted = { [K in keyof TriggererEvents]: [K, TriggererEvents[K]] }[keyof TriggererEvents];

function setUp(capacity = 100) {
  const submitted: ActiveOutcome[] = [];
  const emitted: Emitted[] = [];
  const figures = { fired: 0, failed: 0, cancelled: 0 };
  let slotsFreed = 0;
  const triggers: ActiveTriggers = new ActiveTriggers({
    registry: {
      lookup: (classpath) => CLASSES.get(classpath),
      resolve: async (classpath) => {
        const cls = CLASSES.get(classpath);
        if (!cls) throw new TriggerNotFoundError(`no trigger class ${classpath} is known`);
        return cls;
      },
    },
    runtime: { sleepUntil },
    writer: { submit: (outcome) => submitted.push(outcome) },
    figures: { fired: () => figures.fired++, failed: () => figures.failed++, cancelled: () => figures.cancelled++ },
    log: silentLogger(),
    capacity,
    emit: (event, payload) => emitted.push([event, payload] as Emitted),
    listening: () => true,
    onSlotFreed: () => slotsFreed++,
  });
  const row = (id: number, classpath: string, kwargs: JsonObject = {}): ClaimedTrigger => ({
    id,
    classpath,
    kwargs,
    createdAt: new Date(0),
    task: { dagId: 'd', runId: 'r', taskId: `t${id}` },
  });
  const failureOf = (id: number): { error: string; traceback: string } => {
    const outcome = submitted.find((o) => o.triggerId === id);
    expect(outcome?.kind, `trigger ${id}'s outcome`).to.equal('failure');
    return outcome?.payload as { error: string; traceback: string };
  };
  return { triggers, submitted, emitted, figures, row, failureOf, slotsFreed: () => slotsFreed };
}

describe('ActiveTriggers (unit, no database)', () => {
  beforeEach(() => {
    cleaned.length = 0;
  });

  it('starts a trigger from its row and hands its event to the writer; written() ends it', async () => {
    const { triggers, submitted, emitted, figures, row } = setUp();
    await triggers.start(row(1, 'unit.Fire', { answer: 42 }));
    expect(triggers.ids()).to.deep.equal([1]);
    await untilTurns(() => submitted.length === 1, 'the event at the writer');
    const [outcome] = submitted as [ActiveOutcome];
    expect(outcome).to.include({ triggerId: 1, kind: 'event' });
    expect(outcome.payload).to.deep.equal({ answer: 42 });
    expect(triggers.size, 'still held until written').to.equal(1);
    triggers.written(outcome, 'applied');
    expect(triggers.size).to.equal(0);
    expect(figures.fired).to.equal(1);
    expect(emitted.map(([name]) => name)).to.deep.equal(['trigger:started', 'trigger:fired']);
    expect(emitted[1]?.[1]).to.include({ triggerId: 1, result: 'applied' });
  });

  it('fails a trigger whose classpath is unknown, naming it', async () => {
    const { triggers, failureOf, row } = setUp();
    await triggers.start(row(2, 'unit.Nowhere'));
    expect(failureOf(2).error).to.equal('TriggerNotFoundError: no trigger class unit.Nowhere is known');
  });

  it('fails a trigger whose run() throws before returning, instead of holding it forever', async () => {
    const { triggers, submitted, failureOf, row } = setUp();
    await triggers.start(row(3, 'unit.SyncThrow'));
    await untilTurns(() => submitted.length === 1, 'the failure');
    expect(failureOf(3).error).to.equal('Error: threw synchronously');
  });

  it('makes any thrown value a bounded, storable failure: non-Errors, unprintable values, huge messages, NUL', async () => {
    const { triggers, submitted, failureOf, row } = setUp();
    for (const [id, what] of [[10, 'plainObject'], [11, 'unprintable'], [12, 'huge'], [13, 'unstorable']] as const) {
      await triggers.start(row(id, 'unit.Throw', { what }));
    }
    await untilTurns(() => submitted.length === 4, 'four failures');
    expect(failureOf(10).error).to.equal('a trigger threw a non-Error value: {"code":7,"reason":"not an Error"}');
    expect(failureOf(11).error).to.equal('a trigger threw a non-Error value: [object Object]');
    const huge = failureOf(12);
    expect(huge.error.length).to.be.below(MAX_FAILURE_TEXT + 100);
    expect(huge.error).to.match(/^Error: x+… \[\d+ more characters cut\]$/);
    expect(huge.traceback.length).to.be.at.most(MAX_FAILURE_TEXT + 100);
    expect(failureOf(13).error).to.equal('Error: bad byte \uFFFD and half \uFFFD of a pair');
  });

  it('runs cleanup() before handing the event on', async () => {
    const { triggers, submitted, row } = setUp();
    await triggers.start(row(4, 'unit.FireWithCleanup', { ok: true }));
    await untilTurns(() => submitted.length === 1, 'the event');
    expect(cleaned).to.deep.equal(['fire']);
  });

  it('cancelUnowned() cancels only the triggers no longer owned; they clean up and are forgotten without an outcome', async () => {
    const { triggers, submitted, emitted, figures, row } = setUp();
    await triggers.start(row(5, 'unit.Polite', { n: 5 }));
    await triggers.start(row(6, 'unit.Polite', { n: 6 }));
    triggers.cancelUnowned(new Set([5]), 'task cleared');
    await untilTurns(() => triggers.size === 1, 'trigger 6 forgotten');
    expect(triggers.ids()).to.deep.equal([5]);
    expect(cleaned).to.deep.equal(['polite 6']);
    expect(submitted, 'a cancelled trigger writes nothing').to.deep.equal([]);
    expect(figures.cancelled).to.equal(1);
    expect(emitted.at(-1)).to.deep.equal(['trigger:cancelled', { triggerId: 6, task: { dagId: 'd', runId: 'r', taskId: 't6' }, reason: 'task cleared' }]);
    triggers.cancelUnowned(new Set(), 'shutdown');
    await untilTurns(() => triggers.size === 0, 'trigger 5 forgotten');
  });

  describe('with a fake clock', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    });
    afterEach(() => clock.restore());

    it('forgets a cancelled trigger that ignores its signal after the grace period, and runs its cleanup', async () => {
      const { triggers, emitted, row } = setUp();
      await triggers.start(row(7, 'unit.Stubborn'));
      triggers.cancelUnowned(new Set(), 'taken over');
      await clock.tickAsync(9_000);
      expect(triggers.ids(), 'still within the grace').to.deep.equal([7]);
      await clock.tickAsync(1_000);
      await untilTurns(() => triggers.size === 0, 'the stubborn trigger forgotten');
      expect(cleaned).to.deep.equal(['stubborn']);
      expect(emitted.at(-1)?.[0]).to.equal('trigger:cancelled');
    });
  });

  it('frees a slot when a full triggerer writes an outcome', async () => {
    const { triggers, submitted, row, slotsFreed } = setUp(1);
    await triggers.start(row(8, 'unit.Fire'));
    await untilTurns(() => submitted.length === 1, 'the event');
    triggers.written(submitted[0] as ActiveOutcome, 'fenced');
    expect(slotsFreed()).to.equal(1);
  });
});

