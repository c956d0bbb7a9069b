import nunjucks from 'nunjucks';
import type { BaseOperator } from '../sdk/base-operator.ts';
import type { TaskContext } from '../sdk/context.ts';
import { templateContext } from './template-context.ts';
import { TemplateLookups } from './template-lookups.ts';

/*
 * Templated fields (Airflow's `render_template_fields`): right before a task's code runs, each field
 * its operator lists in `templateFields` is rendered with Nunjucks (Jinja's syntax) against Airflow's
 * context names. Strings are rendered; arrays and plain objects are rendered item by item (object
 * keys are kept as they are); anything else — numbers, functions, XComArgs — is left alone.
 */

/*
 * One environment for every template, configured as Airflow's: no HTML autoescaping, and strict
 * about undefined names (Airflow's DAG default is jinja2's StrictUndefined), so a typo fails the
 * task instead of running a command with a hole in it. It holds no state between renders
 * (`renderString` compiles afresh and caches nothing), so sharing it is safe.
 */
const environment = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true });

/** At most this many passes of fetching variables and connections that templates name. */
const MAX_PASSES = 10;

/** A template that could not be rendered: names the operator's field and, when known, the line. */
export class TemplateRenderError extends Error {
  override name = 'TemplateRenderError';
  readonly field: string;
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(field: string, detail: string, position: { line: number; column: number } | undefined, options?: ErrorOptions) {
    super(`template error in field '${field}'${position ? ` (line ${position.line}, column ${position.column})` : ''}: ${detail}`, options);
    this.field = field;
    this.line = position?.line;
    this.column = position?.column;
  }
}

/** The fields an operator templates: its own `templateFields` property if it has one, else its class's static list. */
export function templateFieldsOf(task: BaseOperator): readonly string[] {
  const own = (task as unknown as { templateFields?: unknown }).templateFields;
  const fields = Array.isArray(own) ? own : (task.constructor as { templateFields?: unknown }).templateFields;
  if (fields === undefined) return [];
  if (!Array.isArray(fields) || fields.some((f) => typeof f !== 'string')) {
    throw new TypeError(`task '${task.taskId}': templateFields must be an array of field names, got ${JSON.stringify(fields)}`);
  }
  return fields as string[];
}

/**
 * Each templated field's rendered value, in `templateFields` order (fields whose value is undefined or
 * null are left out). Variables and connections the templates name are fetched through the context,
 * so their secrets are registered with the masker before any rendered value is logged.
 */
export async function renderTemplateFields(task: BaseOperator, context: TaskContext): Promise<Map<string, unknown>> {
  const fields = templateFieldsOf(task);
  const record = task as unknown as Record<string, unknown>;
  for (const field of fields) {
    if (!(field in record)) throw new TypeError(`task '${task.taskId}' lists '${field}' in templateFields, but the operator has no such field`);
  }
  const present = fields.filter((field) => record[field] !== undefined && record[field] !== null);
  if (present.length === 0) return new Map();
  const lookups = new TemplateLookups(context);
  const names = { ...templateContext(context), ...lookups.names() };
  for (let pass = 1; ; pass++) {
    let failure: unknown;
    const rendered = new Map<string, unknown>();
    // Every field is rendered even after one fails, so one pass records all the lookups they name.
    for (const field of present) {
      try {
        rendered.set(field, renderValue(record[field], field, names, lookups));
      } catch (error) {
        failure ??= error;
      }
    }
    // A pass that named something not fetched yet saw placeholders: fetch, and render again.
    if (lookups.pendingCount === 0) {
      if (failure !== undefined) throw failure;
      return rendered;
    }
    if (pass === MAX_PASSES) {
      throw new TemplateRenderError(present[0] as string, `the templates still named new variables or connections after ${MAX_PASSES} rounds of fetching them`, undefined);
    }
    await lookups.fetchPending();
  }
}

/** Renders one template string outside any task (no `var` or `conn`), e.g. for checks and tests. */
export function renderString(template: string, names: Record<string, unknown>, field = 'template'): string {
  return renderText(template, field, names, undefined);
}

function renderValue(value: unknown, field: string, names: Record<string, unknown>, lookups: TemplateLookups): unknown {
  if (typeof value === 'string') return renderText(value, field, names, lookups);
  if (Array.isArray(value)) return value.map((item) => renderValue(item, field, names, lookups));
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderValue(v, field, names, lookups)]));
  }
  return value;
}

function renderText(template: string, field: string, names: Record<string, unknown>, lookups: TemplateLookups | undefined): string {
  if (lookups) lookups.lastFailedKey = undefined;
  try {
    return environment.renderString(template, names);
  } catch (error) {
    const { detail, position } = describeNunjucksError(error);
    // A failed lookup carries no position from Nunjucks: point at where the template names the key.
    const key = lookups?.lastFailedKey;
    throw new TemplateRenderError(field, detail, position ?? (key === undefined ? undefined : positionOf(template, key)), { cause: error });
  }
}

/** Nunjucks' message without its `(unknown path) [Line 2, Column 5]` prefix, and that position. */
export function describeNunjucksError(error: unknown): { detail: string; position: { line: number; column: number } | undefined } {
  const message = error instanceof Error ? error.message : String(error);
  const match = /^\(unknown path\)(?: \[Line (\d+), Column (\d+)\])?\s*/.exec(message);
  if (!match) return { detail: message, position: undefined };
  let detail = message.slice(match[0].length).trim();
  if (detail === 'attempted to output null or undefined value') {
    detail += ': a name or attribute is undefined (or null); templates are strict, as Airflow\'s: use {{ x | default("") }} for an optional value';
  }
  const position = match[1] === undefined ? undefined : { line: Number(match[1]), column: Number(match[2]) };
  return { detail, position };
}

/** Line and column (1-based) of the first occurrence of `needle` in `text`. */
function positionOf(text: string, needle: string): { line: number; column: number } | undefined {
  const at = text.indexOf(needle);
  if (at === -1) return undefined;
  const before = text.slice(0, at).split('\n');
  return { line: before.length, column: (before.at(-1) as string).length + 1 };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Puts the rendered values on the operator for the run of its code (Airflow renders onto the task
 * object too), and returns what undoes it: a worker process keeps its DAGs between tasks, so the
 * next run of the task must see the templates again, not this run's values.
 */
export function applyRenderedFields(task: BaseOperator, rendered: ReadonlyMap<string, unknown>): () => void {
  const originals = new Map<string, PropertyDescriptor | undefined>();
  for (const [field, value] of rendered) {
    originals.set(field, Object.getOwnPropertyDescriptor(task, field));
    Object.defineProperty(task, field, { value, writable: true, configurable: true, enumerable: true });
  }
  return () => {
    for (const [field, descriptor] of originals) {
      if (descriptor) Object.defineProperty(task, field, descriptor);
      else delete (task as unknown as Record<string, unknown>)[field];
    }
  };
}
