import { HostLimiter } from '../src/common/host-limiter.ts';
import { excerpt, readCappedBody } from '../src/common/http-body.ts';
import { redactor, redactUrl } from '../src/common/redact-url.ts';
import { MAX_TIMER_MS, sleep } from '../src/common/sleep.ts';
import type { DurationInput } from '../src/sdk/duration.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { judgeBody, judgeStatus, normaliseExpectation, type HttpExpectation, type HttpExpectationRow } from '../src/sdk/http-expectation.ts';
import { toJsonValue, type JsonValue } from '../src/sdk/json.ts';
import { durationSeconds, refuseUnknownFields } from '../src/sdk/trigger-kwargs.ts';
import { BaseTrigger, TriggerEvent, type TriggerRuntime } from '../src/sdk/trigger.ts';
import type { Connection } from '../src/secrets/connection.ts';
import { environmentConnection } from '../src/secrets/env-secrets.ts';
import { isSensitiveName, maskSecret } from '../src/secrets/masker.ts';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

export interface HttpPollTriggerKwargs {
  /**
   * An absolute `http://` or `https://` URL, without credentials (`user:pass@` is refused: use
   * `httpConnId`, or send them in `headers`). A query string is allowed; logs and errors never show it.
   * Not with `httpConnId`.
   */
  url?: string;
  /**
   * A connection (Airflow's `http_conn_id`) giving the base URL, the login and password (sent as
   * Basic auth) and headers (its extra). The trigger row stores only this id: the connection is
   * resolved where the trigger runs (the triggerer, or the worker when poking).
   */
  httpConnId?: string;
  /** With `httpConnId`: the path (and query) after the connection's base URL. @default '' */
  endpoint?: string;
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
  /** '' with httpConnId. */
  url: string;
  httpConnId?: string;
  endpoint?: string;
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
  readonly #limiter: HostLimiter;
  readonly #fetch: typeof fetch;
  /** Where requests go and with which headers; with httpConnId, known once the connection is resolved. */
  #target: HttpTarget | undefined;
  #lastReason = '';

  constructor(kwargs: HttpPollTriggerKwargs, deps: HttpPollDeps = {}) {
    const row = normalise(kwargs, new.target.name);
    super(row);
    this.#limiter = deps.limiter ?? processLimiter;
    this.#fetch = deps.fetch ?? fetch;
    if (row.httpConnId === undefined) this.#target = httpTarget(new URL(row.url), row.headers, []);
  }

  /** The URL polled. With httpConnId it is known only after `resolveConnection`. */
  get url(): URL {
    if (!this.#target) throw new Error(`${this.constructor.name} on connection '${this.kwargs.httpConnId}': the connection is not resolved yet`);
    return this.#target.url;
  }

  /** The URL without credentials, query string or fragment: what logs and errors show. */
  get safeUrl(): string {
    if (!this.#target) return `connection '${this.kwargs.httpConnId}' ${this.kwargs.endpoint ?? ''}`.trimEnd();
    return redactUrl(this.#target.url);
  }

  /**
   * With httpConnId: fetches the connection (through `getConnection`) and builds the URL and headers
   * from it. Its password, and the Basic credentials made of it, are masked in this process's logs.
   * Without httpConnId it does nothing.
   */
  async resolveConnection(getConnection: (connId: string) => Promise<Connection>): Promise<void> {
    const { httpConnId, endpoint, headers } = this.kwargs;
    if (httpConnId === undefined || this.#target) return;
    const connection = await getConnection(httpConnId);
    this.#target = connectionTarget(connection, endpoint ?? '', headers, this.constructor.name);
  }

  override async run(signal: AbortSignal, runtime?: TriggerRuntime): Promise<TriggerEvent<HttpPollEventPayload> | undefined> {
    // Resolved here, where the trigger runs: the row holds the connection id, never the secret.
    // Outside a triggerer (no runtime), only the environment can define it.
    const getConnection = runtime?.getConnection?.bind(runtime) ?? (async (connId: string) => environmentConnection(connId));
    await this.resolveConnection(getConnection);
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
    const target = this.#target;
    if (!target) throw new Error(`${this.constructor.name}: resolveConnection must be called before poll when httpConnId is given`);
    const timeout = new AbortController();
    const timeoutMs = Math.min(requestTimeout * 1000, MAX_TIMER_MS);
    const timer = setTimeout(() => timeout.abort(new Error(`no answer within ${requestTimeout} s`)), timeoutMs);
    let answer;
    try {
      answer = await this.#limiter.run(
        target.url.host,
        async () => {
          const response = await this.#fetch(target.url, { ...this.#request(target), signal: AbortSignal.any([signal, timeout.signal]) });
          const body = method === 'HEAD' ? { text: '', truncated: false } : await readCappedBody(response, MAX_READ_BYTES);
          return { response, body };
        },
        signal,
      );
    } catch (error) {
      if (signal.aborted) return { done: false, transient: false, reason: 'cancelled' };
      const reason = timeout.signal.aborted ? String((timeout.signal.reason as Error).message) : target.redact(describeFetchError(error));
      return { done: false, transient: true, reason };
    } finally {
      clearTimeout(timer);
    }
    const { response, body } = answer;
    const status = response.status;
    const verdict = judgeStatus(status, expect);
    if (verdict === 'fail') {
      throw new HttpPollError(
        `${method} ${this.safeUrl} answered ${status} ${response.statusText}: ${target.redact(excerpt(body.text)) || '(empty body)'} — a 4xx the wait cannot outlast; ` +
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
    if (!judged.ok) return { done: false, transient: false, status, reason: target.redact(`answered ${status}, but ${judged.reason}`) };
    return { done: true, payload: this.#payload(response, body.text, body.truncated, json) };
  }

  #request(target: HttpTarget): RequestInit {
    const { method, body } = this.kwargs;
    const init: RequestInit = { method, headers: new Headers(target.headers), redirect: 'follow' };
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
  refuseUnknownFields(kwargs, ['url', 'httpConnId', 'endpoint', 'method', 'headers', 'body', 'pollInterval', 'requestTimeout', 'expect', 'responseHeaders'], owner);
  const connection = connectionFields(kwargs, owner);
  if (!connection && kwargs.url === undefined) throw new InvalidTriggerKwargsError(`${owner} needs url (an http:// or https:// URL) or httpConnId (a connection)`);
  const url = connection ? '' : parseUrl(kwargs.url, owner);
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
    ...connection,
    method,
    headers: checkHeaders(kwargs.headers ?? {}, owner),
    body,
    pollInterval: durationSeconds(kwargs.pollInterval ?? 5, `${owner} pollInterval`, true),
    requestTimeout: durationSeconds(kwargs.requestTimeout ?? 30, `${owner} requestTimeout`, true),
    expect: normaliseExpectation(kwargs.expect, `${owner} expect`),
    responseHeaders: responseHeaders.map((h) => h.toLowerCase()),
  };
}

/** httpConnId and endpoint, checked: either a connection or a url, not both. */
function connectionFields(kwargs: HttpPollTriggerKwargs, owner: string): { httpConnId: string; endpoint?: string } | undefined {
  const { httpConnId, endpoint } = kwargs;
  if (httpConnId === undefined) {
    if (endpoint !== undefined) throw new InvalidTriggerKwargsError(`${owner} endpoint needs httpConnId (the connection whose base URL it follows); without one give url`);
    return undefined;
  }
  if (typeof httpConnId !== 'string' || !/^[A-Za-z0-9_.-]{1,250}$/.test(httpConnId)) {
    throw new InvalidTriggerKwargsError(`${owner} httpConnId must be a connection id (letters, digits, '_', '-', '.'), got ${JSON.stringify(httpConnId)}`);
  }
  // '' is how a stored row says "no url".
  if (kwargs.url !== undefined && kwargs.url !== '') throw new InvalidTriggerKwargsError(`${owner} takes url or httpConnId, not both: with httpConnId give the path as endpoint`);
  if (endpoint !== undefined && typeof endpoint !== 'string') throw new InvalidTriggerKwargsError(`${owner} endpoint must be a string (a path such as /health)`);
  if (endpoint !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)) {
    throw new InvalidTriggerKwargsError(`${owner} endpoint must be a path after the connection's base URL (such as /health), not a whole URL`);
  }
  return endpoint === undefined ? { httpConnId } : { httpConnId, endpoint };
}

interface HttpTarget {
  readonly url: URL;
  readonly headers: Record<string, string>;
  /** Blanks out what must not reach a log or an error: URLs' credentials and queries, query and header values. */
  readonly redact: (text: string) => string;
}

function httpTarget(url: URL, headers: Record<string, string>, secrets: readonly string[]): HttpTarget {
  return { url, headers, redact: redactor([...url.searchParams.values(), ...Object.values(headers), ...secrets]) };
}

/**
 * The URL and headers of a request through a connection (Airflow's HttpHook): the base URL is the
 * host (which may carry its own `http(s)://`), else `https://` for type `https` (or schema `https`)
 * and `http://` otherwise, then the port, then the schema as a base path unless it names the
 * protocol; the endpoint follows. The extra's string values are headers; login and password become
 * Basic auth unless the headers already carry an Authorization.
 */
export function connectionTarget(connection: Connection, endpoint: string, headers: Record<string, string>, owner: string): HttpTarget {
  const label = `${owner} connection '${connection.connId}'`;
  if (!connection.host) throw new InvalidTriggerKwargsError(`${label} has no host: set one (tsflow connections add ${connection.connId} --uri http://HOST:PORT/…)`);
  const schema = connection.schema ?? '';
  const protocolInSchema = schema === 'http' || schema === 'https';
  let base = connection.host.includes('://')
    ? connection.host
    : `${connection.connType === 'https' || schema === 'https' ? 'https' : 'http'}://${connection.host}`;
  if (connection.port !== null) base += `:${connection.port}`;
  if (schema !== '' && !protocolInSchema) base += `/${schema.replace(/^\/+/, '')}`;
  let url: URL;
  try {
    url = new URL(endpoint.replace(/^\/+/, ''), base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new InvalidTriggerKwargsError(`${label} gives the base URL ${redactUrl(base)}, which with endpoint '${endpoint.slice(0, 100)}' is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidTriggerKwargsError(`${label} must give an http:// or https:// base URL, got ${url.protocol}//`);
  const merged: Record<string, string> = {};
  for (const [name, value] of Object.entries(connection.extra)) if (typeof value === 'string') merged[name] = value;
  Object.assign(merged, headers);
  const secrets: string[] = [];
  if (connection.password !== null) secrets.push(connection.password);
  const hasAuth = Object.keys(merged).some((name) => name.toLowerCase() === 'authorization');
  if (!hasAuth && (connection.login !== null || connection.password !== null)) {
    const token = Buffer.from(`${connection.login ?? ''}:${connection.password ?? ''}`).toString('base64');
    merged['Authorization'] = `Basic ${token}`;
    secrets.push(token);
  }
  for (const secret of secrets) maskSecret(secret);
  for (const [name, value] of Object.entries(merged)) if (isSensitiveName(name)) maskSecret(value);
  return httpTarget(url, merged, secrets);
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
      `${owner} url ${redactUrl(url)} holds credentials (user:password@): URLs are logged and stored, so keep them in a connection ` +
        `(httpConnId), or pass credentials in headers (e.g. headers: { Authorization: 'Basic …' } or 'Bearer …')`,
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
