import { pino, type Level, type Logger } from 'pino';

export type { Logger };
export type LogLevel = Level | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** JSON lines on stderr, so stdout stays free for command output. */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything: the default for library objects constructed without one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
