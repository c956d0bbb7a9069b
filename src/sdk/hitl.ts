import type { JsonObject, JsonValue } from './json.ts';

/*
 * Human in the loop (Airflow 3.1's `HITLOperator`): what a request holds, what an answer is, and the
 * checks an answer must pass — shared by the operator (which validates again when it resumes), the
 * database layer (which validates before it stores), the CLI and the API.
 */

/** A request for a human decision, as stored in `hitl_detail`. */
export interface HitlRequest {
  readonly subject: string;
  /** Markdown shown under the subject; null: none. */
  readonly body: string | null;
  /** What the person may choose; non-empty, distinct. */
  readonly options: readonly string[];
  /** Form fields the person may fill: name → default value (its JSON type is the field's type). */
  readonly params: JsonObject;
  /** The tsflow users (API usernames) who may answer; empty: anyone allowed to act. */
  readonly assignees: readonly string[];
  /** What is chosen when the wait times out; null: a timeout fails the task. */
  readonly defaults: readonly string[] | null;
  /** Whether several options may be chosen at once. */
  readonly multiple: boolean;
}

/** The answer, as the resumed task returns it (its XCom): Airflow's shape, camelCase. */
export interface HitlAnswer {
  [field: string]: JsonValue;
  chosenOptions: string[];
  /** Every param, the person's value or else its default. */
  paramsInput: JsonObject;
  /** The user who answered; null when the request timed out and its defaults were taken. */
  respondedBy: string | null;
  /** ISO 8601, UTC (database clock). */
  respondedAt: string;
  /** True when nobody answered before the timeout and the defaults were taken. */
  timedOut: boolean;
}

/** An answer that the request does not allow: names the bad value and what is allowed. */
export class InvalidHitlAnswerError extends Error {
  override name = 'InvalidHitlAnswerError';
}

/** Nobody answered before the timeout and the request has no defaults (Airflow's `HITLTimeoutError`). */
export class HitlTimeoutError extends Error {
  override name = 'HitlTimeoutError';
}

/** The JSON type names a param's value is checked against (that of its default). */
function jsonType(value: JsonValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Checks a person's choices and params against the request; returns the params input with the
 * defaults of the params not given. Throws `InvalidHitlAnswerError`.
 */
export function checkAnswer(request: Pick<HitlRequest, 'options' | 'params' | 'multiple'>, chosen: readonly string[], paramsGiven: JsonObject): { chosenOptions: string[]; paramsInput: JsonObject } {
  const allowed = request.options.map((o) => JSON.stringify(o)).join(', ');
  if (!Array.isArray(chosen) || chosen.length === 0) throw new InvalidHitlAnswerError(`choose at least one option among ${allowed}`);
  for (const option of chosen) {
    if (typeof option !== 'string' || !request.options.includes(option)) {
      throw new InvalidHitlAnswerError(`option ${JSON.stringify(option)} is not one of ${allowed}`);
    }
  }
  const distinct = [...new Set(chosen)];
  if (distinct.length > 1 && !request.multiple) {
    throw new InvalidHitlAnswerError(`this request takes one option, got ${distinct.length} (${distinct.map((o) => JSON.stringify(o)).join(', ')})`);
  }
  const paramsInput: JsonObject = { ...request.params };
  for (const [name, value] of Object.entries(paramsGiven)) {
    if (!Object.prototype.hasOwnProperty.call(request.params, name)) {
      const known = Object.keys(request.params).sort();
      throw new InvalidHitlAnswerError(`param '${name}' is not asked for: ${known.length === 0 ? 'this request has no params' : `the params are ${known.join(', ')}`}`);
    }
    const expected = jsonType(request.params[name] as JsonValue);
    if (expected !== 'null' && value !== null && jsonType(value) !== expected) {
      throw new InvalidHitlAnswerError(`param '${name}' must be a JSON ${expected} (as its default), got a ${jsonType(value)}`);
    }
    paramsInput[name] = value;
  }
  return { chosenOptions: distinct, paramsInput };
}

/** What a HITL task may do with its own request (`context.hitl`); absent where the task has no database. */
export interface HitlAccess {
  /** Stores this try's request (replacing an earlier try's); returns the wake-up event's key and the request's creation time (epoch ms, database clock). */
  request(request: HitlRequest): Promise<{ eventKey: string; createdAtMs: number }>;
  /** The stored answer; undefined while nobody has answered. */
  answer(): Promise<HitlAnswer | undefined>;
  /** On a timeout: stores the defaults as the answer unless a person answered first; returns the answer that stands. */
  takeDefaults(): Promise<HitlAnswer>;
}
