import { open } from 'node:fs/promises';
import { formatLogLine } from '../runner/task-log.ts';

/** One line of a try's log: as `tsflow tasks logs` prints it, and the JSON record it came from. */
export interface LogLine {
  text: string;
  record: Record<string, unknown>;
}

/** At most this much of a log is read per call; `nextOffset` says where to go on. */
const MAX_CHUNK_BYTES = 1024 * 1024;

/**
 * The whole lines of a log file from byte `offset` (a line still being written is left for the next
 * read), and the offset after them. A missing file reads as empty.
 */
export async function readLogFrom(file: string, offset: number): Promise<{ lines: LogLine[]; nextOffset: number; exists: boolean }> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return { lines: [], nextOffset: offset, exists: false };
  }
  try {
    const { size } = await handle.stat();
    if (size <= offset) return { lines: [], nextOffset: offset, exists: true };
    const buffer = Buffer.alloc(Math.min(size - offset, MAX_CHUNK_BYTES));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    const end = buffer.subarray(0, bytesRead).lastIndexOf(0x0a) + 1;
    const text = buffer.subarray(0, end).toString('utf8');
    const lines = text.split('\n').filter((l) => l.trim() !== '').map(toLogLine);
    return { lines, nextOffset: offset + end, exists: true };
  } finally {
    await handle.close();
  }
}

function toLogLine(line: string): LogLine {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    record = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : { msg: line };
  } catch {
    record = { msg: line };
  }
  return { text: formatLogLine(line), record };
}
