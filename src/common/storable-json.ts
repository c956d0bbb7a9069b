import type { JsonValue } from '../sdk/json.ts';

/*
 * PostgreSQL's text and jsonb cannot hold every JavaScript string: jsonb refuses the escape \u0000
 * (SQLSTATE 22P05) and a lone UTF-16 surrogate (22P02), which JSON.stringify writes as `\ud800`.
 * A trigger's error message or event can carry either (bytes read from a socket, a C library's
 * message), and a row that can never be written must not be retried forever. These helpers make a
 * value storable and say whether they had to change it.
 */

/** Stands in for what the database cannot hold: U+FFFD, the Unicode replacement character. */
export const REPLACEMENT = '\uFFFD';

/** A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `text` with every NUL and lone surrogate replaced by U+FFFD, and cut to `maxLength` UTF-16 code
 * units (never inside a surrogate pair) with a note of how much was cut.
 */
export function storableText(text: string, maxLength = Number.POSITIVE_INFINITY): string {
  let out = text;
  if (out.length > maxLength) {
    let end = Math.max(0, maxLength);
    const last = out.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end--; // keep the pair whole: cut before it
    out = `${out.slice(0, end)}… [${out.length - end} more characters cut]`;
  }
  return out.replace(UNSTORABLE, REPLACEMENT);
}

/** Whether `text` holds a character PostgreSQL's text or jsonb refuses. */
export function hasUnstorableText(text: string): boolean {
  UNSTORABLE.lastIndex = 0;
  const found = UNSTORABLE.test(text);
  UNSTORABLE.lastIndex = 0;
  return found;
}

/** A copy of `value` whose strings (keys too) hold nothing jsonb refuses; `value` itself when nothing had to change. */
export function storableJson(value: JsonValue): JsonValue {
  if (typeof value === 'string') return hasUnstorableText(value) ? storableText(value) : value;
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((item) => {
      const fixed = storableJson(item);
      changed ||= fixed !== item;
      return fixed;
    });
    return changed ? out : value;
  }
  if (value !== null && typeof value === 'object') {
    let changed = false;
    const out: Record<string, JsonValue> = {};
    for (const [key, item] of Object.entries(value)) {
      const fixedKey = hasUnstorableText(key) ? storableText(key) : key;
      const fixed = storableJson(item);
      changed ||= fixed !== item || fixedKey !== key;
      out[fixedKey] = fixed;
    }
    return changed ? out : value;
  }
  return value;
}
