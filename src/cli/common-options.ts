import path from 'node:path';
import type { OptionSpec } from './usage.ts';
import type { Settings } from './settings.ts';

/** Options several commands share, described once. */
export const DAGS_FOLDER = {
  type: 'string',
  value: 'DIR',
  description: 'the DAG files, searched recursively',
  default: 'TSFLOW_DAGS_FOLDER, else ./dags',
} as const satisfies OptionSpec;

export const TRIGGERS_FOLDER = {
  type: 'string',
  multiple: true,
  value: 'DIR',
  description: 'a folder of user trigger modules (repeatable)',
  default: 'TSFLOW_TRIGGERS_FOLDER, else none',
} as const satisfies OptionSpec;

export const JSON_OUTPUT = { type: 'boolean', description: 'print JSON instead of text' } as const satisfies OptionSpec;

/**
 * How long a daemon waits for an unreachable database at start (seconds); unset waits for as long
 * as it takes, so a daemon started before PostgreSQL needs no outside supervisor to restart it.
 */
export const STARTUP_TIMEOUT = {
  type: 'string',
  value: 'S',
  description: 'give up if the database is still unreachable after S seconds',
  default: 'wait as long as it takes',
} as const satisfies OptionSpec;

export function dagsFolderOf(settings: Settings, value: string | undefined): string {
  return value ? path.resolve(value) : settings.dagsFolder;
}

export function triggersFoldersOf(settings: Settings, value: readonly string[] | undefined): readonly string[] {
  return value ? value.map((f) => path.resolve(f)) : settings.triggersFolders;
}
