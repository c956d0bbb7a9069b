import os from 'node:os';
import path from 'node:path';
import { LOG_LEVELS, type LogLevel } from '../common/logger.ts';
import { Keyring } from '../secrets/keyring.ts';

/** Configuration shared by every command, from `TSFLOW_*` variables; flags override some of it. */
export interface Settings {
  /** `TSFLOW_DATABASE_URL`; unset means the embedded PostgreSQL. */
  readonly databaseUrl: string | undefined;
  /** `TSFLOW_HOME`. @default ~/.tsflow */
  readonly home: string;
  /** `TSFLOW_DAGS_FOLDER` / `--dags-folder`. @default ./dags */
  readonly dagsFolder: string;
  /** `TSFLOW_TRIGGERS_FOLDER` (':'-separated) / `--triggers-folder` (repeatable). @default none */
  readonly triggersFolders: readonly string[];
  /** `TSFLOW_LOG_LEVEL`. @default info (warn for standalone) */
  readonly logLevel: LogLevel | undefined;
  /** `TSFLOW_DEFAULT_DEFERRABLE`: sensors' `deferrable` when they do not set it. @default false */
  readonly defaultDeferrable: boolean;
  /** `TSFLOW_EXECUTOR` / `--executor`: `local` or `sequential`. @default local */
  readonly executor: string;
  /** `TSFLOW_PARALLELISM` / `--parallelism`. @default 32 */
  readonly parallelism: number;
  /** `TSFLOW_LOGS_FOLDER`: task logs, one file per try. @default $TSFLOW_HOME/logs */
  readonly logsFolder: string;
  /**
   * `TSFLOW_HOSTNAME`: the name a `tsflow worker` registers under and its tries record (Airflow's
   * `hostname_callable`); for hosts whose own name is not what operators know them by. @default os.hostname()
   */
  readonly hostname: string;
  /**
   * `TSFLOW_SECRET_KEY`: one or more keys, comma-separated (the first encrypts, all decrypt). Checked
   * when read. Unset: the embedded setup uses (and creates) `$TSFLOW_HOME/secret.key`; with
   * TSFLOW_DATABASE_URL, connections and variables cannot be stored and trigger kwargs are not encrypted.
   */
  readonly secretKey: string | undefined;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

/** The one place that reads the environment. */
export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const logLevel = env['TSFLOW_LOG_LEVEL'];
  if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new UsageError(`TSFLOW_LOG_LEVEL '${logLevel}' is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const home = path.resolve(nonEmpty(env['TSFLOW_HOME']) ?? path.join(os.homedir(), '.tsflow'));
  return {
    databaseUrl: checkDatabaseUrl(nonEmpty(env['TSFLOW_DATABASE_URL'])),
    home,
    dagsFolder: path.resolve(nonEmpty(env['TSFLOW_DAGS_FOLDER']) ?? 'dags'),
    triggersFolders: (nonEmpty(env['TSFLOW_TRIGGERS_FOLDER']) ?? '').split(':').filter(Boolean).map((f) => path.resolve(f)),
    logLevel: logLevel as LogLevel | undefined,
    defaultDeferrable: parseBoolean(env['TSFLOW_DEFAULT_DEFERRABLE'], 'TSFLOW_DEFAULT_DEFERRABLE', false),
    executor: nonEmpty(env['TSFLOW_EXECUTOR']) ?? 'local',
    parallelism: parseCount(env['TSFLOW_PARALLELISM'], 'TSFLOW_PARALLELISM', 32, 0),
    logsFolder: path.resolve(nonEmpty(env['TSFLOW_LOGS_FOLDER']) ?? path.join(home, 'logs')),
    hostname: nonEmpty(env['TSFLOW_HOSTNAME']) ?? os.hostname(),
    secretKey: checkSecretKey(nonEmpty(env['TSFLOW_SECRET_KEY'])),
  };
}

/**
 * Only PostgreSQL URLs: anything else would fail later with a driver error far from its cause. The
 * message names the scheme, never the URL (it may carry a password).
 */
function checkDatabaseUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const shape = 'postgres://USER:PASSWORD@HOST:PORT/DATABASE';
  let scheme: string;
  try {
    scheme = new URL(value).protocol;
  } catch {
    throw new UsageError(`TSFLOW_DATABASE_URL is not a URL: give one such as ${shape}, or unset it to use the embedded PostgreSQL`);
  }
  if (scheme !== 'postgres:' && scheme !== 'postgresql:') {
    throw new UsageError(
      `TSFLOW_DATABASE_URL has the scheme '${scheme.replace(/:$/, '')}', but tsflow needs PostgreSQL: give a URL such as ${shape} ` +
        '(postgres: or postgresql:), or unset it to use the embedded PostgreSQL',
    );
  }
  return value;
}

/** Refuses a malformed TSFLOW_SECRET_KEY at start, naming which key is wrong (never echoing it). */
function checkSecretKey(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    Keyring.parse(value, 'TSFLOW_SECRET_KEY');
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return value;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

export function parseBoolean(value: string | undefined, name: string, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new UsageError(`${name} '${value}' is not a boolean: use true or false`);
}

/** A whole number ≥ `min`, or the fallback when absent. */
export function parseCount(value: string | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed) || parsed < min) throw new UsageError(`${name} must be a whole number ≥ ${min}, got '${value}'`);
  return parsed;
}

/** A TCP port, 1–65535. */
export function parsePort(value: string, name: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed) || parsed < 1 || parsed > 65535) {
    throw new UsageError(`${name} must be a port number from 1 to 65535, got '${value}'`);
  }
  return parsed;
}

/** Seconds (fractions allowed) as milliseconds, or the fallback when absent. */
export function parseSeconds(value: string | undefined, name: string, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed) || parsed <= 0) throw new UsageError(`${name} must be a number of seconds > 0, got '${value}'`);
  return Math.max(1, Math.round(parsed * 1000));
}
