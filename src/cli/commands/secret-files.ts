import { chmod, readFile, writeFile } from 'node:fs/promises';
import { UsageError } from '../settings.ts';

/** Writes `value` as JSON to `file`, readable by its owner only (it holds secrets). */
export async function writeSecretFile(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600); // a file that existed keeps its mode otherwise
}

/** A JSON object read from `file`; anything else is a usage error naming the file. */
export async function readJsonObjectFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`${file} must hold a JSON object`);
  return value as Record<string, unknown>;
}
