import type { BenchDatabase } from './bench-database.ts';

export interface ScenarioContext {
  /** A server to create the scenario's database on; unset: an embedded server of its own. */
  adminUrl: string | undefined;
  /** Tiny sizes: the test suite runs every scenario this way so none can rot. */
  smoke: boolean;
  log: (line: string) => void;
}

export interface Target {
  what: string;
  target: string;
  actual: string;
  met: boolean;
}

export interface ScenarioResult {
  scenario: string;
  title: string;
  /** What was run: sizes and options. */
  settings: Record<string, string | number | boolean>;
  /** Each measured figure (times in ms, memory in MB, rates per second). */
  figures: Record<string, number>;
  targets: Target[];
  server: { version: string; settings: Readonly<Record<string, string>>; commitTimestamps: boolean };
}

export interface Scenario {
  name: string;
  title: string;
  run(context: ScenarioContext): Promise<ScenarioResult[]>;
}

export function serverInfo(db: BenchDatabase): ScenarioResult['server'] {
  return { version: db.serverVersion, settings: db.settings, commitTimestamps: db.commitTimestamps };
}

export function target(what: string, targetText: string, actual: number, limit: number, unit = 'ms'): Target {
  return { what, target: `≤ ${targetText}`, actual: `${actual.toFixed(actual >= 100 ? 0 : 1)} ${unit}`, met: actual <= limit };
}
