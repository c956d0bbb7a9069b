import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { TaskInstanceKey } from '../db/schema.ts';
import { formatLogLine, taskLogPath } from '../runner/task-log.ts';

/**
 * Prints what a try's log file gained since the last call for that try: `dags test` shows a task's
 * log each time its code stops running (it finished, deferred or was rescheduled), and a resumed
 * try appends to the same file, so each line is printed once.
 */
export class TaskLogTail {
  readonly #logsFolder: string;
  readonly #printed = new Map<string, number>();

  constructor(logsFolder: string) {
    this.#logsFolder = logsFolder;
  }

  /** The new lines as text, or none when the file is missing or unchanged. */
  read(key: TaskInstanceKey, tryNumber: number): string[] {
    const file = taskLogPath(this.#logsFolder, key, tryNumber);
    const from = this.#printed.get(file) ?? 0;
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      return [];
    }
    if (size <= from) return [];
    const buffer = Buffer.alloc(size - from);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buffer, 0, buffer.length, from);
    } finally {
      closeSync(fd);
    }
    // Only whole lines: a line still being written is left for the next read.
    const text = buffer.toString('utf8');
    const end = text.lastIndexOf('\n') + 1;
    this.#printed.set(file, from + Buffer.byteLength(text.slice(0, end)));
    return text.slice(0, end).split('\n').filter((l) => l.trim() !== '').map(formatLogLine);
  }
}
