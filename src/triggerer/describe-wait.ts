import { redactUrl } from '../common/redact-url.ts';
import type { JsonObject } from '../sdk/json.ts';
import { DateTimeTrigger } from '../../triggers/date-time-trigger.ts';
import { FileExistsTrigger } from '../../triggers/file-exists-trigger.ts';
import { HttpPollTrigger } from '../../triggers/http-poll-trigger.ts';

/**
 * What a pending wait waits for, as the Waits page, the API and `tsflow triggers list` show it:
 * - `time`: a due moment (DateTimeTrigger, and TimeDeltaTrigger, which is stored as one);
 * - `file`: a path or glob (FileExistsTrigger);
 * - `http`: a method and URL, without credentials, query string or fragment (HttpPollTrigger);
 * - `other`: a trigger class this function does not know; nothing of its kwargs is shown.
 */
export type WaitTarget =
  | { kind: 'time'; dueAt: string }
  | { kind: 'file'; path: string }
  | { kind: 'http'; method: string; url: string }
  | { kind: 'other' };

/**
 * The one place a wait's kwargs are read for display, after they were decoded (never in SQL: they
 * may be encrypted at rest). Kwargs that do not have the expected shape show as `other`; headers,
 * bodies and the rest of an HTTP trigger's kwargs are never shown.
 */
export function describeWait(classpath: string, kwargs: JsonObject): WaitTarget {
  if (classpath === DateTimeTrigger.classpath) {
    const moment = kwargs['moment'];
    if (typeof moment === 'string' && Number.isFinite(Date.parse(moment))) return { kind: 'time', dueAt: new Date(moment).toISOString() };
  } else if (classpath === FileExistsTrigger.classpath) {
    const path = kwargs['path'];
    if (typeof path === 'string') return { kind: 'file', path };
  } else if (classpath === HttpPollTrigger.classpath) {
    const url = kwargs['url'];
    const method = kwargs['method'];
    if (typeof url === 'string') return { kind: 'http', method: typeof method === 'string' ? method : 'GET', url: redactUrl(url) };
  }
  return { kind: 'other' };
}

/** One line for a terminal: `due 2026-…Z`, `file /data/in/*.csv`, `GET https://host/path`, or the empty string. */
export function waitTargetText(target: WaitTarget): string {
  switch (target.kind) {
    case 'time':
      return `due ${target.dueAt}`;
    case 'file':
      return `file ${target.path}`;
    case 'http':
      return `${target.method} ${target.url}`;
    case 'other':
      return '';
  }
}
