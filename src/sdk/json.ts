/** A value that survives `JSON.stringify` → `JSON.parse` unchanged: what trigger kwargs, events and XComs hold. */
export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Thrown when a value meant for the database (kwargs, an event, an XCom) is not plain JSON. */
export class NotJsonError extends TypeError {
  override name = 'NotJsonError';
}

/**
 * Returns `value` as plain JSON, or throws a `NotJsonError` naming the first offending path.
 * Objects with a `toJSON()` (luxon `DateTime`, `Date`) are converted the way `JSON.stringify` would;
 * functions, symbols, bigints, non-finite numbers, `undefined` inside arrays, and class instances
 * without `toJSON` (Map, Set, …) are refused instead of being silently dropped or mangled.
 */
export function toJsonValue(value: unknown, label: string): JsonValue {
  return convert(value, label, new Set());
}

export function toJsonObject(value: unknown, label: string): JsonObject {
  const json = toJsonValue(value ?? {}, label);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new NotJsonError(`${label} must be a plain object, got ${describe(value)}`);
  }
  return json;
}

function convert(value: unknown, path: string, seen: Set<object>): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new NotJsonError(`${path} is ${value}, which JSON cannot hold`);
    return value;
  }
  if (typeof value !== 'object') {
    throw new NotJsonError(`${path} is a ${typeof value}, which JSON cannot hold; pass plain data`);
  }
  if (seen.has(value)) throw new NotJsonError(`${path} refers back to itself (a cycle)`);
  const withToJson = value as { toJSON?: unknown };
  if (typeof withToJson.toJSON === 'function') {
    return convert((withToJson.toJSON as () => unknown).call(value), path, seen);
  }
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value.map((item, index) => convert(item, `${path}[${index}]`, seen));
    }
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new NotJsonError(`${path} is a ${describe(value)}, which JSON cannot hold; convert it to plain data`);
    }
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue;
      out[key] = convert(item, `${path}.${key}`, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}
