import { performance } from 'node:perf_hooks';
import type pg from 'pg';

/** One statement a pool's client sent: when it was sent and answered (epoch ms, sub-ms precision), on which connection. */
export interface TimedQuery {
  readonly client: number;
  readonly text: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly rows: number | null;
}

/** The epoch in ms with the precision of performance.now(), comparable with the database's clock on the same machine. */
export function preciseEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Records every statement a pool's clients send (only its first 120 characters), to see where a
 * daemon's time goes without changing its code. Attach before the pool opens its first connection.
 */
export class QueryTimeline {
  readonly queries: TimedQuery[] = [];
  #clients = 0;

  constructor(pool: pg.Pool) {
    pool.on('connect', (client) => this.#wrap(client));
  }

  #wrap(client: pg.PoolClient): void {
    const id = ++this.#clients;
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    const record = (text: string, startMs: number, rows: number | null): void => {
      this.queries.push({ client: id, text, startMs, endMs: preciseEpochMs(), rows });
    };
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const first = args[0];
      const text = (typeof first === 'string' ? first : String((first as { text?: unknown } | undefined)?.text ?? '')).replace(/\s+/g, ' ').trim().slice(0, 120);
      const startMs = preciseEpochMs();
      const result = original(...args);
      if (result instanceof Promise) {
        result.then(
          (r: { rowCount?: number | null }) => record(text, startMs, r?.rowCount ?? null),
          () => record(text, startMs, null),
        );
      }
      return result;
    };
  }

  /** Statements started in [fromMs, toMs), in order of sending. */
  between(fromMs: number, toMs: number): TimedQuery[] {
    return this.queries.filter((q) => q.startMs >= fromMs && q.startMs < toMs).sort((a, b) => a.startMs - b.startMs);
  }
}
