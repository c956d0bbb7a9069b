import { HostLimiter } from '../src/common/host-limiter.ts';
import { excerpt, readCappedBody } from '../src/common/http-body.ts';
import { redactor, redactUrl } from '../src/common/redact-url.ts';
import { MAX_TIMER_MS, sleep } from '../src/common/sleep.ts';
import type { DurationInput } from '../src/sdk/duration.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { judgeBody, judgeStatus, normaliseExpectation, type HttpExpectation, type HttpExpectationRow } from '../src/sdk/http-expectation.ts';
import { toJsonValue, type JsonValue } from '../src/sdk/json.ts';
import { durationSeconds, refuseUnknownFields } from '../src/sdk/trigger-kwargs.ts';
import { BaseTrigger, TriggerEvent } from '../src/sdk/trigger.ts';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

export interface HttpPollTriggerKwargs {
  /**
   * An absolute `http://` or `https://` URL, without credentials (`user:pass@` is refused: send
   * them in `headers`). A query string is allowed; logs and errors never show it.
   */
  url: string;
  /** Either case. @default 'GET' */
  method?: HttpMethod | Lowercase<HttpMethod>;
  /** Request headers. Stored in the trigger row like all kwargs, but never logged. */
  headers?: Record<string, string>;
  /** A string is sent as is; other JSON is sent as `application/json`. Not with GET or HEAD. */
  body?: JsonValue;
  /** Time between polls, from the end of one request to the start of the next. @default 5 seconds */
  pollInterval?: DurationInput;
  /** Give up on one request after this long (then poll again). @default 30 seconds */
  requestTimeout?: DurationInput;
  /** When the wait is over. @default any 2xx */
  expect?: HttpExpectation;
  /** Response headers to put in the event (lower-cased names). @default content-type, etag, last-modified, location */
  responseHeaders?: string[];
}

/** The kwargs as stored in the trigger row: durations in seconds, every field present. */
export type HttpPollTriggerRow = {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: JsonValue;
  pollInterval: number;
  requestTimeout: number;
  expect: HttpExpectationRow;
  responseHeaders: string[];
};

/** The event: the answer that met the expectation. `body` is parsed JSON when the answer is JSON, else text. */
export type HttpPollEventPayload = { status: number; headers: Record<string, string>; body: JsonValue; bodyTruncated: boolean };

/** One poll's outcome when it did not fail the wait. */
export type HttpPoll =
  | { done: true; payload: HttpPollEventPayload }
  | { done: false; transient: boolean; reason: string; status?: number; retryAfterMs?: number };

/** The endpoint answered a 4xx the expectation does not wait on: polling again cannot help. */
export class HttpPollError extends Error {
  override name = 'HttpPollError';
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/** Optional collaborators, for tests and for hosts that want their own limits. */
export interface HttpPollDeps {
  limiter?: HostLimiter;
  fetch?: typeof fetch;
}

/** Bodies are read up to this size for the expectation; the rest is not downloaded. */
export const MAX_READ_BYTES = 1024 * 1024;
/** The event carries at most this much body; a longer one is cut to text with `bodyTruncated`. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Concurrent requests per host (`host:port`) from one process. */
export const REQUESTS_PER_HOST = 10;
const MAX_RETRY_AFTER_MS = 3600_000;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/*
 * The one piece of module-level state, on purpose. The triggerer rebuilds each trigger from its row
 * with `new HttpPollTrigger(kwargs)`, so triggers cannot be handed a shared object, yet the bound must
 * hold across all of them: ten thousand waits on one service in one triggerer must not become ten
 * thousand concurrent requests. So one limiter per process, with one queue per host that exists only
 * while that host has requests in flight. Tests and embedders pass their own via `HttpPollDeps`.
 */
const processLimiter = new HostLimiter(REQUESTS_PER_HOST);

/**
 * Polls an HTTP endpoint until its answer meets a declarative expectation (Airflow's `HttpSensorTrigger`).
 * Network errors, timeouts, 5xx, 408 and 429 are transient: logged (never with header values) and
 * polled again, after `Retry-After` when the server sends one. A 4xx not listed in
 * `expect.keepPollingOn` fails the wait with the status and an excerpt of the body.
 *
 * Logs and errors show the URL as `scheme://host:port/path` only, and every text that reaches them
 * (a fetch error, a body excerpt) has URLs redacted and the query and header values blanked out.
 */
export class HttpPollTrigger extends BaseTrigger<HttpPollTriggerRow> {
  static override readonly classpath: string = 'tsflow.triggers.HttpPollTrigger';
  readonly url: URL;
  readonly #limiter: HostLimiter;
  readonly #fetch: typeof fetch;
  /** Blanks out what must not reach a log or an error: URLs' credentials and queries, query and header values. */
  readonly #redact: (text: string) => string;
  #lastReason = '';

  constructor(kwargs: HttpPollTriggerKwargs, deps: HttpPollDeps = {}) {
    const row = normalise(kwargs, new.target.name);
    super(row);
    this.url = new URL(row.url);
    this.#limiter = deps.limiter ?? processLimiter;
    this.#fetch = deps.fetch ?? fetch;
    this.#redact = redactor([...this.url.searchParams.values(), ...Object.values(row.headers)]);
  }

  /** The URL without credentials, query string or fragment: what logs and errors show. */
  get safeUrl(): string {
    return redactUrl(this.url);
  }

  override async run(signal: AbortSignal): Promise<TriggerEvent<HttpPollEventPayload> | undefined> {
    for (let attempt = 1; !signal.aborted; attempt++) {
      const poll = await this.poll(signal);
      if (poll.done) return new TriggerEvent(poll.payload);
      if (signal.aborted) break;
      this.#report(poll, attempt);
      await sleep(Math.max(this.kwargs.pollInterval * 1000, poll.retryAfterMs ?? 0), signal);
    }
    return undefined;
  }

  /** One request, bounded by the per-host limit and `requestTimeout`. Throws `HttpPollError` on a failing 4xx. */
  async poll(signal: AbortSignal): Promise<HttpPoll> {
    const { method, requestTimeout, expect } = this.kwargs;
    const timeout = new AbortController();
    const timeoutMs = Math.min(requestTimeout * 1000, MAX_TIMER_MS);
    const timer = setTimeout(() => timeout.abort(new Error(`no answer within ${requestTimeout} s`)), timeoutMs);
    let answer;
    try {
      answer = await this.#limiter.run(
        this.url.host,
        async () => {
          const response = await this.#fetch(this.url, { ...this.#request(), signal: AbortSignal.any([signal, timeout.signal]) });
          const body = method === 'HEAD' ? { text: '', truncated: false } : await readCappedBody(response, MAX_READ_BYTES);
          return { response, body };
        },
        signal,
      );
    } catch (error) {
      if (signal.aborted) return { done: false, transient: false, reason: 'cancelled' };
      const reason = timeout.signal.aborted ? String((timeout.signal.reason as Error).message) : this.#redact(describeFetchError(error));
      return { done: false, transient: true, reason };
    } finally {
      clearTimeout(timer);
    }
    const { response, body } = answer;
    const status = response.status;
    const verdict = judgeStatus(status, expect);
    if (verdict === 'fail') {
      throw new HttpPollError(
        `${method} ${this.safeUrl} answered ${status} ${response.statusText}: ${this.#redact(excerpt(body.text)) || '(empty body)'} — a 4xx the wait cannot outlast; ` +
          `fix the request (URL, method, credentials), or list ${status} in expect.keepPollingOn to keep polling on it`,
        status,
      );
    }
    if (verdict !== 'check-body') {
      const retryAfterMs = retryAfter(response.headers.get('retry-after'));
      return { done: false, transient: verdict === 'transient', status, reason: `answered ${status}`, ...(retryAfterMs ? { retryAfterMs } : {}) };
    }
    const json = parseJson(body.text, body.truncated);
    const judged = judgeBody(expect, body.text, json);
    if (!judged.ok) return { done: false, transient: false, status, reason: this.#redact(`answered ${status}, but ${judged.reason}`) };
    return { done: true, payload: this.#payload(response, body.text, body.truncated, json) };
  }

  #request(): RequestInit {
    const { method, headers, body } = this.kwargs;
    const init: RequestInit = { method, headers: new Headers(headers), redirect: 'follow' };
    if (body !== null) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      const sent = init.headers as Headers;
      if (typeof body !== 'string' && !sent.has('content-type')) sent.set('content-type', 'application/json');
    }
    return init;
  }

  #payload(response: Response, text: string, truncated: boolean, json: JsonValue | undefined): HttpPollEventPayload {
    const headers: Record<string, string> = {};
    for (const name of this.kwargs.responseHeaders) {
      const value = response.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    const isJson = json !== undefined && ((response.headers.get('content-type') ?? '').includes('json') || this.kwargs.expect.json.length > 0);
    if (Buffer.byteLength(text) > MAX_PAYLOAD_BYTES || truncated) {
      return { status: response.status, headers, body: Buffer.from(text).subarray(0, MAX_PAYLOAD_BYTES).toString(), bodyTruncated: true };
    }
    return { status: response.status, headers, body: isJson ? json : text, bodyTruncated: false };
  }

  /** Logs a poll that did not finish the wait: a change of reason at info (transient: warn), a repeat at debug. */
  #report(poll: Extract<HttpPoll, { done: false }>, attempt: number): void {
    const fields = { method: this.kwargs.method, url: this.safeUrl, status: poll.status, reason: poll.reason, attempt };
    if (poll.reason === this.#lastReason) this.log.debug(fields, 'still waiting');
    else if (poll.transient) this.log.warn(fields, 'endpoint not answering well; polling again');
    else this.log.info(fields, 'endpoint not ready; polling again');
    this.#lastReason = poll.reason;
  }
}

function normalise(kwargs: HttpPollTriggerKwargs, owner: string): HttpPollTriggerRow {
  if (typeof kwargs !== 'object' || kwargs === null) throw new InvalidTriggerKwargsError(`${owner} needs kwargs { url, … }, got ${String(kwargs)}`);
  refuseUnknownFields(kwargs, ['url', 'method', 'headers', 'body', 'pollInterval', 'requestTimeout', 'expect', 'responseHeaders'], owner);
  const url = parseUrl(kwargs.url, owner);
  const method = typeof kwargs.method === 'string' ? kwargs.method.toUpperCase() : (kwargs.method ?? 'GET');
  if (typeof method !== 'string' || !METHODS.includes(method)) {
    throw new InvalidTriggerKwargsError(`${owner} method must be one of ${METHODS.join(', ')}, got ${String(kwargs.method)}`);
  }
  const body = kwargs.body === undefined ? null : toJsonValue(kwargs.body, `${owner} body`);
  if (body !== null && (method === 'GET' || method === 'HEAD')) {
    throw new InvalidTriggerKwargsError(`${owner} body cannot be sent with ${method}: use method 'POST' (or another that takes a body)`);
  }
  const responseHeaders = kwargs.responseHeaders ?? ['content-type', 'etag', 'last-modified', 'location'];
  if (!Array.isArray(responseHeaders) || !responseHeaders.every((h) => typeof h === 'string' && h !== '')) {
    throw new InvalidTriggerKwargsError(`${owner} responseHeaders must be an array of header names, got ${JSON.stringify(responseHeaders)}`);
  }
  return {
    url,
    method,
    headers: checkHeaders(kwargs.headers ?? {}, owner),
    body,
    pollInterval: durationSeconds(kwargs.pollInterval ?? 5, `${owner} pollInterval`, true),
    requestTimeout: durationSeconds(kwargs.requestTimeout ?? 30, `${owner} requestTimeout`, true),
    expect: normaliseExpectation(kwargs.expect, `${owner} expect`),
    responseHeaders: responseHeaders.map((h) => h.toLowerCase()),
  };
}

function parseUrl(value: unknown, owner: string): string {
  if (typeof value !== 'string' || !URL.canParse(value)) {
    const shown = typeof value === 'string' ? `'${redactUrl(value).slice(0, 100)}'` : String(value);
    throw new InvalidTriggerKwargsError(`${owner} url ${shown} is not a valid URL: give an absolute http:// or https:// URL`);
  }
  const url = new URL(value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidTriggerKwargsError(`${owner} url must use http:// or https://, got ${url.protocol}//`);
  }
  // fetch() refuses such a URL on every request, and its error quotes the URL whole: refuse it here,
  // when the DAG is imported, without echoing what came before the '@'.
  if (url.username !== '' || url.password !== '') {
    throw new InvalidTriggerKwargsError(
      `${owner} url ${redactUrl(url)} holds credentials (user:password@): URLs are logged and stored, so pass credentials in headers ` +
        `(e.g. headers: { Authorization: 'Basic …' } or 'Bearer …'), or, once connections exist, in a connection`,
    );
  }
  return url.href;
}

/** Header values are never echoed: they are where credentials live. */
function checkHeaders(headers: unknown, owner: string): Record<string, string> {
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw new InvalidTriggerKwargsError(`${owner} headers must be an object of name → string value`);
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') throw new InvalidTriggerKwargsError(`${owner} headers['${name}'] must be a string, got a ${typeof value}`);
    try {
      new Headers([[name, value]]);
    } catch {
      throw new InvalidTriggerKwargsError(`${owner} headers['${name}'] is not a valid header: names are tokens (letters, digits, '-', …) and values hold no line breaks`);
    }
    out[name] = value;
  }
  return out;
}

function parseJson(text: string, truncated: boolean): JsonValue | undefined {
  if (truncated || text === '') return undefined;
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
}

/** `Retry-After` in seconds or as an HTTP date, in ms from now (capped at an hour); undefined if absent or unreadable. */
function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const ms = /^\d+$/.test(header.trim()) ? Number(header.trim()) * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : undefined;
}

/** `fetch failed` says little: the cause's code (ECONNREFUSED, ENOTFOUND, …) says what happened. */
function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
