import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import { maskText } from '../secrets/masker.ts';

export type { Logger };
export type LogLevel = Level | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** JSON lines on stderr, so stdout stays free for command output. Registered secrets are masked (`***`). */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, maskingStream(pino.destination({ dest: 2, sync: true })));
}

/** A logger that drops everything: the default for library objects constructed without one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Wraps a log destination so each finished line has the process's registered secrets replaced by
 * `***` (src/secrets/masker.ts) — in the message, in fields, in an error's stack alike. Masking the
 * serialised line, rather than redacting known paths, also catches a secret inside a longer string.
 */
export function maskingStream(destination: { write(line: string): unknown }): DestinationStream {
  return { write: (line: string) => void destination.write(maskText(line)) };
}
