import { DateTime } from 'luxon';
import type { Dag } from '../sdk/dag.ts';
import type { JsonObject } from '../sdk/json.ts';
import { InvalidParamsError, resolveParams } from '../sdk/params.ts';
import { UsageError } from './settings.ts';

/**
 * A logical date given on the command line: ISO 8601, with or without a time; without an offset it
 * is read as UTC (Airflow wants an aware date; UTC is the only unsurprising guess). Returned in UTC.
 */
export function parseLogicalDate(text: string, what = '--logical-date'): DateTime {
  const date = DateTime.fromISO(text, { zone: 'utc', setZone: true });
  if (!date.isValid) {
    throw new UsageError(`${what} '${text}' is not a date: write ISO 8601, such as 2026-01-01 or 2026-01-01T06:00:00+00:00 (no offset means UTC)`);
  }
  return date.toUTC();
}

/**
 * Checks `--conf` against the DAG's params before anything is written, so a run that would fail
 * every task for its conf is never created. Returns the resolved params.
 */
export function checkConfAgainstParams(dag: Dag, conf: JsonObject): JsonObject {
  try {
    return resolveParams(dag.params, conf);
  } catch (error) {
    if (error instanceof InvalidParamsError) throw new UsageError(`DAG '${dag.dagId}': ${error.message}`, { cause: error });
    throw error;
  }
}
