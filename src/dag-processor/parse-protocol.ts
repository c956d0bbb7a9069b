import type { SerializedDag } from '../dag-bag/serialized-dag.ts';

/*
 * The messages between a DAG processor and its parse child, over the IPC channel `fork` opens
 * (JSON). Never stdout: a DAG file that prints must not corrupt a result. The child parses the files
 * of one batch in order, saying which file it starts before importing it, so that when it hangs or
 * dies the parent knows which file did it.
 */

/** Parent → child: the files to parse (absolute paths), once. */
export interface ParseRequest {
  type: 'parse';
  files: string[];
}

/** Child → parent. */
export type ParseMessage =
  | { type: 'started'; file: string }
  /** One file's outcome: its DAGs serialized, or why it did not import (message and first stack lines). */
  | { type: 'result'; file: string; dags: SerializedDag[]; error?: string }
  /** Every file of the batch has a result. */
  | { type: 'done' };

export function isParseRequest(message: unknown): message is ParseRequest {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'parse' && Array.isArray((message as { files?: unknown }).files);
}

export function isParseMessage(message: unknown): message is ParseMessage {
  if (typeof message !== 'object' || message === null) return false;
  const type = (message as { type?: unknown }).type;
  return type === 'started' || type === 'result' || type === 'done';
}
