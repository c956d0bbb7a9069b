import { pathToFileURL } from 'node:url';
import { serializeDag, type SerializedDag } from '../dag-bag/serialized-dag.ts';
import { isDag } from '../sdk/dag.ts';
import type { ParseMessage } from './parse-protocol.ts';

/** How many stack frames an import error keeps (Airflow keeps a traceback depth of 2; a little more helps with TypeScript). */
const STACK_FRAMES = 4;

/**
 * The inside of a parse child: imports each file in turn and reports its DAGs, serialized, or its
 * error. User code runs here and only here; the DAG processor decides what to do with a file that
 * hangs or kills this process.
 */
export async function parseInThisProcess(files: readonly string[], send: (message: ParseMessage) => Promise<void>): Promise<void> {
  for (const file of files) {
    await send({ type: 'started', file });
    await send({ type: 'result', file, ...(await parseOne(file)) });
  }
  await send({ type: 'done' });
}

async function parseOne(file: string): Promise<{ dags: SerializedDag[]; error?: string }> {
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    return { dags: [], error: describeError(error) };
  }
  const dags = new Map<string, SerializedDag>();
  const seen = new Set<unknown>();
  try {
    for (const value of Object.values(module)) {
      if (!isDag(value) || seen.has(value)) continue;
      seen.add(value);
      if (dags.has(value.dagId)) return { dags: [], error: `DAG id '${value.dagId}' is defined twice in ${file}: DAG ids must be unique` };
      value.fileloc = file;
      dags.set(value.dagId, serializeDag(value, file));
    }
  } catch (error) {
    return { dags: [], error: describeError(error) };
  }
  return { dags: [...dags.values()] };
}

/** The error's first line and the first frames of its stack: enough to find the line, short enough to store. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const head = `${error.name}: ${error.message}`;
  const frames = (error.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line)).slice(0, STACK_FRAMES);
  return [head, ...frames].join('\n');
}
