import { isDeepStrictEqual } from 'node:util';
import { InvalidTriggerKwargsError } from './errors.ts';
import { toJsonValue, type JsonValue } from './json.ts';
import { refuseUnknownFields } from './trigger-kwargs.ts';

/** A JSON field, by dotted path (`data.items.0.state`; a number indexes an array), that must equal a value. */
export type JsonFieldCondition = { path: string; equals: JsonValue };

/**
 * When an HTTP poll counts as done: a declarative condition, so it can be stored with the trigger.
 * All the given conditions must hold.
 */
export interface HttpExpectation {
  /** Status codes that count as success. @default any 2xx */
  status?: number[];
  /** The body must contain this text (searched in its first 1 MiB). */
  bodyContains?: string;
  /** The body must be JSON with this field equal to this value (deep equality); an array: all of them. */
  json?: JsonFieldCondition | JsonFieldCondition[];
  /** 4xx statuses that mean "not there yet": keep polling instead of failing (Airflow's HttpSensor waits on 404). @default [404] */
  keepPollingOn?: number[];
}

/** The expectation as stored in the trigger row: every field present. */
export type HttpExpectationRow = { status: number[] | null; bodyContains: string | null; json: JsonFieldCondition[]; keepPollingOn: number[] };

/** What a status says before the body is looked at. */
export type StatusVerdict = 'check-body' | 'keep-polling' | 'transient' | 'fail';

/** Accepts what a user writes and the stored row alike (a row's nulls mean "not set"). */
export function normaliseExpectation(input: HttpExpectation | HttpExpectationRow | undefined, label: string): HttpExpectationRow {
  const given: unknown = input ?? {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new InvalidTriggerKwargsError(`${label} must be an object such as { status: [200], json: { path: 'state', equals: 'done' } }`);
  }
  const expect = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== null)) as HttpExpectation;
  refuseUnknownFields(expect, ['status', 'bodyContains', 'json', 'keepPollingOn'], label);
  const status = expect.status === undefined ? null : statusList(expect.status, `${label}.status`, 100);
  const keepPollingOn = statusList(expect.keepPollingOn ?? [404], `${label}.keepPollingOn`, 400, true);
  if (keepPollingOn.some((code) => code > 499)) {
    throw new InvalidTriggerKwargsError(`${label}.keepPollingOn lists 4xx codes only (5xx always keep polling), got [${keepPollingOn.join(', ')}]`);
  }
  if (expect.bodyContains !== undefined && (typeof expect.bodyContains !== 'string' || expect.bodyContains === '')) {
    throw new InvalidTriggerKwargsError(`${label}.bodyContains must be a non-empty string, got ${String(expect.bodyContains)}`);
  }
  const conditions = normaliseJsonConditions(expect.json, `${label}.json`);
  return { status, bodyContains: expect.bodyContains ?? null, json: conditions, keepPollingOn };
}

/**
 * `expect.json`'s declarative form (one condition or an array, all must hold) as a stored list; also
 * the `match` of `ExternalEventTrigger`. `label` names the field in errors.
 */
export function normaliseJsonConditions(input: JsonFieldCondition | JsonFieldCondition[] | null | undefined, label: string): JsonFieldCondition[] {
  const json = input === undefined || input === null ? [] : Array.isArray(input) ? input : [input];
  return json.map((condition: unknown, index) => {
    const where = `${label}${Array.isArray(input) ? `[${index}]` : ''}`;
    const given = condition as Partial<JsonFieldCondition> | null;
    if (typeof given !== 'object' || given === null || typeof given.path !== 'string' || given.path === '' || !('equals' in given)) {
      throw new InvalidTriggerKwargsError(`${where} must be { path: 'a.b.0.c', equals: <JSON value> }, got ${JSON.stringify(condition)}`);
    }
    return { path: given.path, equals: toJsonValue(given.equals as JsonValue, `${where}.equals`) };
  });
}

/** The first of `conditions` that `value` fails, or undefined when all hold (deep equality at each path). */
export function failedJsonCondition(conditions: readonly JsonFieldCondition[], value: JsonValue): JsonFieldCondition | undefined {
  return conditions.find((condition) => !isDeepStrictEqual(fieldAt(value, condition.path), condition.equals));
}

/**
 * The status alone: an accepted one → look at the body; 5xx, 408 and 429 → transient, keep polling;
 * a listed 4xx → keep polling; any other 4xx → fail; anything else (202 when 200 is expected, 304…) →
 * keep polling.
 */
export function judgeStatus(status: number, expect: HttpExpectationRow): StatusVerdict {
  const accepted = expect.status ? expect.status.includes(status) : status >= 200 && status <= 299;
  if (accepted) return 'check-body';
  if (status >= 500 || status === 408 || status === 429) return 'transient';
  if (expect.keepPollingOn.includes(status)) return 'keep-polling';
  if (status >= 400) return 'fail';
  return 'keep-polling';
}

/** Whether the body meets the body conditions; `reason` says which one did not. */
export function judgeBody(expect: HttpExpectationRow, text: string, json: JsonValue | undefined): { ok: boolean; reason?: string } {
  if (expect.bodyContains !== null && !text.includes(expect.bodyContains)) return { ok: false, reason: 'the body does not contain the expected text yet' };
  if (expect.json.length === 0) return { ok: true };
  if (json === undefined) return { ok: false, reason: 'the body is not JSON (or was cut at 1 MiB)' };
  const failed = failedJsonCondition(expect.json, json);
  if (failed) return { ok: false, reason: `JSON field '${failed.path}' does not equal the expected value yet` };
  return { ok: true };
}

/** The value at a dotted path, or undefined when the path does not exist. */
export function fieldAt(value: JsonValue, dottedPath: string): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const key of dottedPath.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = Array.isArray(current) ? (/^\d+$/.test(key) ? current[Number(key)] : undefined) : Object.hasOwn(current, key) ? current[key] : undefined;
  }
  return current;
}

function statusList(value: unknown, label: string, min: number, allowEmpty = false): number[] {
  if (!Array.isArray(value) || (value.length === 0 && !allowEmpty) || !value.every((code) => Number.isInteger(code) && code >= min && code <= 599)) {
    throw new InvalidTriggerKwargsError(`${label} must be ${allowEmpty ? 'an' : 'a non-empty'} array of HTTP status codes (${min}-599), got ${JSON.stringify(value)}`);
  }
  return [...new Set(value as number[])];
}
