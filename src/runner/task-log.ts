import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pino, type Level, type Logger } from 'pino';
import { mapIndexOf, type TaskInstanceKey } from '../db/schema.ts';
import { maskText } from '../secrets/masker.ts';

/*
 * One log file per task instance try: `<logs>/<dag_id>/<run_id>/<task_id>/attempt=<try>.log` (Airflow's
 * `map_index=<i>/` folder under the task's for a mapped task instance), JSON
 * lines (pino). Every run of the try appends to it — the first run, and each resume after a defer or
 * a reschedule — so the file tells the whole story of the try.
 */

const ATTEMPT_FILE = /^attempt=(\d+)\.log$/;

/**
 * A path segment from an id: dag and task ids are restricted, but run ids are free text, so anything
 * that could leave the folder or is awkward in a file name is percent-encoded ('/', '\\', '%',
 * control characters, a leading '.').
 */
export function pathSegment(id: string): string {
  const encoded = id.replace(/[^A-Za-z0-9_.:+=@,~-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  return encoded.startsWith('.') ? `%2E${encoded.slice(1)}` : encoded;
}

/** The folder holding the try logs of one task instance. */
export function taskLogFolder(logsFolder: string, key: TaskInstanceKey): string {
  const folder = path.join(logsFolder, pathSegment(key.dagId), pathSegment(key.runId), pathSegment(key.taskId));
  const mapIndex = mapIndexOf(key);
  return mapIndex < 0 ? folder : path.join(folder, `map_index=${mapIndex}`);
}

export function taskLogPath(logsFolder: string, key: TaskInstanceKey, tryNumber: number): string {
  return path.join(taskLogFolder(logsFolder, key), `attempt=${tryNumber}.log`);
}

/** The try numbers that have a log file, from the file names, ascending. */
export function attemptsIn(fileNames: readonly string[]): number[] {
  return fileNames.flatMap((name) => {
    const match = ATTEMPT_FILE.exec(name);
    return match ? [Number(match[1])] : [];
  }).sort((a, b) => a - b);
}

export interface TaskLog {
  readonly logger: Logger;
  readonly path: string;
  /** Closes the file. Lines logged afterwards (by task code that outlived its run) are dropped. */
  close(): void;
}

/**
 * Opens (appending) the log file of a try. Writes are synchronous, so the lines before a crash or a
 * kill are on disk; task logs are small and this keeps the ordering exact.
 */
export function openTaskLog(logsFolder: string, key: TaskInstanceKey, tryNumber: number, level: Level): TaskLog {
  const file = taskLogPath(logsFolder, key, tryNumber);
  mkdirSync(path.dirname(file), { recursive: true });
  let fd: number | undefined = openSync(file, 'a');
  const sink = {
    write(line: string): void {
      // Secrets the task fetched (connections, secret variables, maskSecret) never reach the file.
      if (fd !== undefined) writeSync(fd, maskText(line));
    },
  };
  const logger = pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, sink);
  return {
    logger,
    path: file,
    close: () => {
      if (fd === undefined) return;
      closeSync(fd);
      fd = undefined;
    },
  };
}

/** One JSON log line as text: `time LEVEL [pid] message {fields}`, then an error's stack, indented. */
export function formatLogLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  if (record === null || typeof record !== 'object') return line;
  const { time, level, msg, err, pid, ...fields } = record;
  const levelName = typeof level === 'number' ? (pino.levels.labels[level] ?? String(level)) : String(level ?? '');
  const extra = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
  const writer = pid === undefined ? '' : ` [${String(pid)}]`;
  let text = `${String(time ?? '')} ${levelName.toUpperCase().padEnd(5)}${writer} ${String(msg ?? '')}${extra}`;
  if (err && typeof err === 'object') {
    const { stack, message } = err as { stack?: unknown; message?: unknown };
    const detail = typeof stack === 'string' ? stack : String(message ?? '');
    text += `\n${detail.replace(/^/gm, '    ')}`;
  }
  return text;
}
