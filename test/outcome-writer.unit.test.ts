import { expect } from 'chai';
import sinon from 'sinon';
import { silentLogger } from '../src/common/logger.ts';
import type { Db } from '../src/db/database.ts';
import type { SubmitResult, TriggerOutcome } from '../src/db/triggers.ts';
import type { JsonValue } from '../src/sdk/json.ts';
import { OutcomeWriter, type OutcomeWriterOptions, type WriteResult } from '../src/triggerer/outcome-writer.ts';
import { turn, untilTurns } from './support/unit.ts';

/*
 * OutcomeWriter against fake statements: what it batches, what it retries and for how long, and
 * what it does with an outcome the database refuses. The fakes refuse what PostgreSQL's jsonb
 * refuses — the escapes \u0000 and a lone surrogate — with the SQLSTATE it would use.
 */

/** Stands for the database handle the real statements take; the fakes only check it is passed through. */
const DB = { name: 'fake db' } as unknown as Db;

function dbError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** What jsonb refuses in JSON.stringify's output: a \u0000 escape, or an escaped (so lone) surrogate. */
function refusedByJsonb(outcomes: readonly TriggerOutcome[]): Error | undefined {
  const text = JSON.stringify(outcomes.map((o) => o.payload));
  if (text.includes('\\u0000')) return dbError('22P05', 'unsupported Unicode escape sequence');
  if (/\\ud[89a-f][0-9a-f]{2}/.test(text)) return dbError('22P02', 'invalid input syntax for type json');
  return undefined;
}

interface Harness {
  writer: OutcomeWriter;
  results: [number, WriteResult][];
  batches: TriggerOutcome[][];
  deleted: number[];
}

/** A writer whose statement is `write` (by default: apply everything jsonb would accept). */
function harness(
  write: (outcomes: readonly TriggerOutcome[], call: number) => Promise<SubmitResult> = async (outcomes) => applyAll(outcomes),
  options: Partial<OutcomeWriterOptions<TriggerOutcome>> = {},
): Harness {
  const results: [number, WriteResult][] = [];
  const batches: TriggerOutcome[][] = [];
  const deleted: number[] = [];
  const writer = new OutcomeWriter({
    db: DB,
    jobId: 7,
    logger: silentLogger(),
    onResult: (outcome, result) => results.push([outcome.triggerId, result]),
    submitOutcomes: async (db, jobId, outcomes) => {
      expect(db).to.equal(DB);
      expect(jobId).to.equal(7);
      batches.push([...outcomes]);
      return write(outcomes, batches.length);
    },
    deleteSpent: async (_db, _jobId, ids) => {
      deleted.push(...ids);
    },
    ...options,
  });
  return { writer, results, batches, deleted };
}

function applyAll(outcomes: readonly TriggerOutcome[]): SubmitResult {
  const refused = refusedByJsonb(outcomes);
  if (refused) throw refused;
  return { applied: new Set(outcomes.map((o) => o.triggerId)), resumed: outcomes.length };
}

function event(triggerId: number, payload: JsonValue = { n: triggerId }): TriggerOutcome {
  return { triggerId, kind: 'event', payload };
}

function failure(triggerId: number, error: string): TriggerOutcome {
  return { triggerId, kind: 'failure', payload: { error, traceback: `${error}\n    at somewhere` } };
}

describe('OutcomeWriter (unit, fake statements)', () => {
  describe('batching', () => {
    it('writes a lone outcome at the end of the tick it arrived in, and outcomes of one tick together', async () => {
      const { writer, batches, results } = harness();
      writer.submit(event(1));
      writer.submit(event(2));
      expect(batches, 'nothing written within the tick').to.have.length(0);
      await writer.flush();
      expect(batches.map((b) => b.map((o) => o.triggerId))).to.deep.equal([[1, 2]]);
      expect(results).to.deep.equal([
        [1, 'applied'],
        [2, 'applied'],
      ]);
    });

    it('starts a write at once when eagerBatch outcomes wait', () => {
      const { writer, batches } = harness(undefined, { eagerBatch: 3 });
      writer.submit(event(1));
      writer.submit(event(2));
      expect(batches).to.have.length(0);
      writer.submit(event(3));
      expect(batches.map((b) => b.length), 'the statement starts within the submit').to.deep.equal([3]);
    });

    it('writes one outcome per trigger: the first counts, a later one is reported as not written', async () => {
      const { writer, batches, results } = harness();
      const first = event(1, { first: true });
      writer.submit(first);
      writer.submit(event(1, { first: false }));
      await writer.flush();
      expect(batches).to.deep.equal([[first]]);
      expect(results).to.have.deep.members([
        [1, 'applied'],
        [1, 'fenced'],
      ]);
    });

    it('reports the outcomes the fence refused as fenced, and deletes only the applied triggers', async () => {
      const { writer, results, deleted } = harness(async () => ({ applied: new Set([1, 3]), resumed: 2 }));
      for (const id of [1, 2, 3]) writer.submit(event(id));
      await writer.flush();
      expect(results).to.deep.equal([
        [1, 'applied'],
        [2, 'fenced'],
        [3, 'applied'],
      ]);
      expect(deleted.sort()).to.deep.equal([1, 3]);
    });

    it('flush() resolves at once when nothing is pending, and after the writes and deletes otherwise', async () => {
      const { writer, deleted } = harness();
      await writer.flush();
      writer.submit(event(1));
      expect(writer.pending).to.equal(1);
      await writer.flush();
      expect(writer.pending).to.equal(0);
      expect(deleted).to.deep.equal([1]);
    });
  });

  describe('an outcome the database refuses', () => {
    it('is found by halving the batch; the others land, and it is written with NUL replaced', async () => {
      const { writer, results, batches } = harness();
      writer.submit(event(1));
      writer.submit(failure(2, 'boom\u0000in C'));
      for (const id of [3, 4, 5, 6, 7, 8]) writer.submit(event(id));
      await writer.flush();
      expect(results.map(([id]) => id).sort((a, b) => a - b)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(results.every(([, result]) => result === 'applied')).to.equal(true);
      const written = batches.flat().filter((o) => o.triggerId === 2 && !refusedByJsonb([o]));
      expect(written).to.have.length(1);
      expect(written[0]?.kind).to.equal('failure');
      expect((written[0]?.payload as { error: string }).error).to.equal('boom\uFFFDin C');
      expect(batches.length, 'a bounded number of statements').to.be.at.most(2 * Math.ceil(Math.log2(8)) + 2);
    });

    it('writes a lone surrogate in an error or an event (keys too) as U+FFFD, and keeps whole pairs', async () => {
      const { writer, results, batches } = harness();
      writer.submit(failure(1, 'half \uD83D of an emoji, whole 😀'));
      writer.submit(event(2, { ['k\uDC00']: ['\u0000', 'fine'] }));
      await writer.flush();
      expect(results).to.have.deep.members([
        [1, 'applied'],
        [2, 'applied'],
      ]);
      const last = new Map(batches.flat().map((o) => [o.triggerId, o.payload]));
      expect((last.get(1) as { error: string }).error).to.equal('half \uFFFD of an emoji, whole 😀');
      expect(last.get(2)).to.deep.equal({ ['k\uFFFD']: ['\uFFFD', 'fine'] });
    });

    it('turns an event refused for another reason into a failure that says why', async () => {
      const { writer, results, batches } = harness(async (outcomes) => {
        if (outcomes.some((o) => o.kind === 'event')) throw dbError('54000', 'total size of jsonb array elements exceeds the maximum');
        return applyAll(outcomes);
      });
      writer.submit(event(1, { huge: 'x' }));
      await writer.flush();
      expect(results).to.deep.equal([[1, 'applied']]);
      const stored = batches.at(-1)?.[0];
      expect(stored?.kind).to.equal('failure');
      expect((stored?.payload as { error: string }).error).to.match(/event could not be stored.*54000.*exceeds the maximum/);
    });

    it('gives up, once, on an outcome refused in every form: unwritten, never retried forever', async () => {
      const { writer, results, batches } = harness(async () => {
        throw dbError('42501', 'permission denied for table task_instance');
      });
      writer.submit(failure(1, 'nul \u0000 here'));
      await writer.flush();
      expect(results).to.deep.equal([[1, 'unwritten']]);
      expect(batches.length, 'the original, the sanitised form, the minimal failure').to.equal(3);
    });
  });

  describe('retries (fake clock)', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    });
    afterEach(() => clock.restore());

    it('retries a lost connection with backoff until it lands', async () => {
      const { writer, results, batches } = harness(async (outcomes, call) => {
        if (call <= 3) throw dbError('57P01', 'terminating connection due to administrator command');
        return applyAll(outcomes);
      });
      writer.submit(event(1));
      await untilTurns(() => batches.length === 1, 'the first attempt');
      expect(results, 'nothing reported while it waits to retry').to.deep.equal([]);
      expect(clock.countTimers(), 'one backoff timer').to.equal(1);
      await clock.tickAsync(3 * 5000); // three backoffs, none longer than the 5 s cap
      await untilTurns(() => results.length === 1, 'the result');
      expect(batches).to.have.length(4);
      expect(results).to.deep.equal([[1, 'applied']]);
    });

    it('retries a conflict (deadlock, serialization failure) at most maxConflictAttempts times', async () => {
      const { writer, results, batches } = harness(
        async () => {
          throw dbError('40P01', 'deadlock detected');
        },
        { maxConflictAttempts: 3 },
      );
      writer.submit(event(1));
      await untilTurns(() => batches.length === 1, 'the first attempt');
      await clock.tickAsync(10 * 5000); // more backoffs than the cap allows
      await untilTurns(() => results.length === 1, 'the result');
      expect(results).to.deep.equal([[1, 'unwritten']]);
      expect(batches).to.have.length(3);
    });

    it('abandon() ends a backoff at once: the outcome is reported fenced without the clock moving', async () => {
      const { writer, results, batches } = harness(async () => {
        throw dbError('08006', 'connection failure');
      });
      writer.submit(event(1));
      writer.submit(event(2));
      await untilTurns(() => batches.length === 1, 'the first attempt');
      const flushed = writer.flush();
      writer.abandon();
      await untilTurns(() => results.length === 2, 'both outcomes reported');
      expect(results).to.have.deep.members([
        [1, 'fenced'],
        [2, 'fenced'],
      ]);
      await flushed;
      expect(batches, 'no statement after abandon()').to.have.length(1);
      expect(clock.countTimers(), 'no backoff timer left behind').to.equal(0);
    });

    it('after abandon(), a submitted outcome is reported fenced and nothing is written', async () => {
      const { writer, results, batches } = harness();
      writer.abandon();
      writer.submit(event(1));
      await turn();
      expect(results).to.deep.equal([[1, 'fenced']]);
      expect(batches).to.deep.equal([]);
    });
  });
});
