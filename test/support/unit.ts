import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/*
 * Helpers for unit tests: no database, no daemons, often a fake clock. Waiting is counted in event
 * loop turns, not milliseconds, so it works the same whether or not timers are faked.
 */

/** One turn of the event loop: resolved promises' callbacks and pending I/O run. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Waits until `condition()` holds, giving the event loop up to `maxTurns` turns (the deadline),
 * then fails naming `what`. For work that needs no timer to finish: with the clock faked, what
 * waits on a timer never finishes here, which is what a test of "ends at once" wants.
 */
export async function untilTurns(condition: () => boolean, what: string, maxTurns = 200): Promise<void> {
  for (let i = 0; i < maxTurns; i++) {
    if (condition()) return;
    await turn();
  }
  if (!condition()) throw new Error(`still waiting for ${what} after ${maxTurns} event loop turns`);
}

/** A pino logger at `level` whose lines (parsed JSON) land in `lines`, and their raw text in `text()`. */
export function captureLogs(level = 'debug'): { logger: Logger; lines: Record<string, unknown>[]; text: () => string } {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: pino({ level }, sink), lines, text: () => raw.join('\n') };
}
