import type { JsonObject } from '../sdk/json.ts';
import { UsageError } from './settings.ts';

/** `--conf '{"key": 1}'`: a JSON object, or a usage error that quotes what was wrong. */
export function parseConf(text: string | undefined): JsonObject {
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--conf is not valid JSON (${(error as Error).message}): pass an object such as '{"date": "2026-01-01"}'`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(`--conf must be a JSON object such as '{"date": "2026-01-01"}', got ${text}`);
  }
  return value as JsonObject;
}
