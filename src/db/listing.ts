/*
 * What the API's list routes ask of a table: a page (`limit`/`offset`), one order column (indexed, or
 * cheap for the table's size) with the key as tie-break, and the total count of matching rows.
 */

export interface Page {
  readonly limit: number;
  readonly offset: number;
}

export interface Order<C extends string> {
  readonly column: C;
  readonly desc: boolean;
}

export interface Listed<T> {
  readonly rows: T[];
  readonly total: number;
}

/** `%` and `_` in a user's search text are taken literally in a LIKE pattern. */
export function likeContains(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
