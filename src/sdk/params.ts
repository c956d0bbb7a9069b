import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { toJsonValue, type JsonObject, type JsonValue } from './json.ts';

const PARAM_BRAND = Symbol.for('tsflow.param');

/**
 * A DAG parameter with a JSON Schema (Airflow's `Param`): `param(5, { type: 'integer', minimum: 1 })`.
 * A param without a default is required: a run must give it in its `conf`.
 */
export interface Param {
  readonly [PARAM_BRAND]: true;
  readonly default?: JsonValue;
  readonly schema: JsonObject;
  readonly description?: string;
}

/** Declares a parameter; `schema` is a JSON Schema (draft 2020-12 keywords as Ajv supports them). */
export function param(defaultValue: JsonValue | undefined, schema: JsonObject = {}, description?: string): Param {
  return {
    [PARAM_BRAND]: true,
    ...(defaultValue !== undefined && { default: defaultValue }),
    schema,
    ...(description !== undefined && { description }),
  };
}

/** What a DAG's `params` may hold: a plain JSON default, or a `param(...)` with a schema. */
export type ParamsInput = Record<string, JsonValue | Param>;

/** Params as stored with the serialized DAG. */
export type SerializedParams = Record<string, { default?: JsonValue; schema?: JsonObject; description?: string }>;

function isParam(value: unknown): value is Param {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PARAM_BRAND] === true;
}

export class InvalidParamsError extends Error {
  override name = 'InvalidParamsError';
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

const ajv = new Ajv({ allErrors: false, strict: false });
const compiled = new WeakMap<object, ValidateFunction>();

function validatorOf(schema: JsonObject, label: string): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    try {
      validate = ajv.compile(schema);
    } catch (error) {
      throw new InvalidParamsError(label, `${label} has an invalid JSON Schema: ${(error as Error).message}`);
    }
    compiled.set(schema, validate);
  }
  return validate;
}

/** Checks a DAG's `params` when the DAG is defined (schemas compile, defaults are JSON and valid). */
export function serializeParams(dagId: string, params: ParamsInput | undefined): SerializedParams {
  const out: SerializedParams = {};
  for (const [name, value] of Object.entries(params ?? {})) {
    const label = `DAG '${dagId}' params.${name}`;
    if (isParam(value)) {
      validatorOf(value.schema, label);
      const entry: SerializedParams[string] = { schema: value.schema };
      if (value.default !== undefined) entry.default = toJsonValue(value.default, `${label} default`);
      if (value.description !== undefined) entry.description = value.description;
      out[name] = entry;
    } else {
      out[name] = { default: toJsonValue(value, label) };
    }
    const entry = out[name];
    if (entry?.schema && entry.default !== undefined) {
      const problem = check(entry.schema, entry.default, label);
      if (problem) throw new InvalidParamsError(`params.${name}`, `${label}: its default ${problem}`);
    }
  }
  return out;
}

function check(schema: JsonObject, value: JsonValue, label: string): string | undefined {
  const validate = validatorOf(schema, label);
  if (validate(value)) return undefined;
  return describe(validate.errors?.[0], value);
}

function describe(error: ErrorObject | null | undefined, value: JsonValue): string {
  const where = error?.instancePath ? ` at ${error.instancePath}` : '';
  return `${JSON.stringify(value)} is not valid${where}: ${error?.message ?? 'does not match the schema'}`;
}

/**
 * The params a run sees: the DAG's defaults overridden by the run's `conf` (Airflow's
 * `dag_run_conf_overrides_params`), each checked against its schema. Throws `InvalidParamsError`
 * naming the first field that is missing or invalid.
 */
export function resolveParams(params: SerializedParams, conf: JsonObject): JsonObject {
  const resolved: JsonObject = {};
  for (const [name, spec] of Object.entries(params)) {
    const value = Object.hasOwn(conf, name) ? conf[name] : spec.default;
    if (value === undefined) {
      throw new InvalidParamsError(name, `param '${name}' is required and has no default: give it in --conf, e.g. --conf '{"${name}": ...}'`);
    }
    if (spec.schema) {
      const problem = check(spec.schema, value, `param '${name}'`);
      if (problem) throw new InvalidParamsError(name, `param '${name}': ${problem}; fix it in --conf`);
    }
    resolved[name] = value;
  }
  return resolved;
}
