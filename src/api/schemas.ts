import { Type, type TSchema } from 'typebox';

/*
 * Schemas shared by several routes. Names follow Airflow's REST API (dag_id, dag_run_id, state,
 * logical_date, total_entries); times are ISO 8601 strings in UTC.
 */

/** RFC 9457 problem details: every error the API returns has this shape. */
export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
  },
  { $id: 'Problem', description: 'An error (RFC 9457 problem details)' },
);

/** A route's responses plus the problem shape for every 4xx and 5xx. */
export function responses<R extends Record<number, TSchema>>(ok: R): R & { '4xx': typeof Problem; '5xx': typeof Problem } {
  return { ...ok, '4xx': Problem, '5xx': Problem };
}

export const NoContent = Type.Null({ description: 'No content' });

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 100;

export const PageQuery = {
  limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE, description: `page size (at most ${MAX_PAGE_SIZE})` }),
  offset: Type.Integer({ minimum: 0, default: 0, description: 'rows to skip' }),
};

/** `order_by`: one of the columns, `-column` for descending. */
export function orderByQuery(columns: readonly string[], fallback: string) {
  return Type.Optional(Type.Enum([...columns, ...columns.map((c) => `-${c}`)], { description: `order by this column (- prefix: descending); default ${fallback}` }));
}

export function parseOrder<C extends string>(value: string | undefined, fallback: string): { column: C; desc: boolean } {
  const text = value ?? fallback;
  return text.startsWith('-') ? { column: text.slice(1) as C, desc: true } : { column: text as C, desc: false };
}

export const DateTimeString = Type.String({ format: 'date-time' });
export const NullableDateTime = Type.Union([DateTimeString, Type.Null()]);

export const iso = (d: Date): string => d.toISOString();
export const isoOrNull = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

export const JsonObjectSchema = Type.Record(Type.String(), Type.Unknown());
