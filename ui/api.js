// The UI's only way to the server: the public JSON API (/api/v1) with the session cookie, and the
// CSRF token (from login or /auth/me) in X-CSRF-Token on every state change.
import { useEffect, useRef } from 'preact/hooks';

const session = { csrf: null, user: null };

export class ApiProblem extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** One API call; resolves with the parsed JSON body, rejects with an ApiProblem carrying the server's detail. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['x-csrf-token'] = session.csrf;
  const response = await fetch(`/api/v1${path}`, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text === '' ? null : JSON.parse(text);
  if (!response.ok) {
    if (response.status === 401 && !path.startsWith('/auth/')) onSignedOut();
    throw new ApiProblem(response.status, data?.detail ?? `${response.status} ${response.statusText}`);
  }
  return data;
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, String(one));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

export const enc = encodeURIComponent;

let signedOutListener = () => {};
export function onSignedOutCall(listener) {
  signedOutListener = listener;
}
function onSignedOut() {
  session.csrf = null;
  session.user = null;
  signedOutListener();
}

export async function login(username, password) {
  const answer = await api('POST', '/auth/login', { username, password });
  session.csrf = answer.csrf_token;
  session.user = answer.user;
  return answer.user;
}

export async function whoAmI() {
  try {
    const answer = await api('GET', '/auth/me');
    session.csrf = answer.csrf_token;
    session.user = answer.user;
    return answer.user;
  } catch (error) {
    if (error instanceof ApiProblem && error.status === 401) return null;
    throw error;
  }
}

export async function logout() {
  await api('POST', '/auth/logout').catch(() => undefined);
  session.csrf = null;
  session.user = null;
}

const RANK = { viewer: 0, operator: 1, admin: 2 };
export const canOperate = (user) => user !== null && RANK[user.role] >= RANK.operator;

// Live updates: one EventSource on /api/v1/stream for the whole page. The server relays the
// daemons' NOTIFYs (ti, trigger, dag) and says `reconnected` when some may have been missed; a page
// reloads what it shows, debounced, on the events it cares about. Nothing polls.
const listeners = new Set();
let source = null;
const status = { connected: false, listeners: new Set() };

export function startLive() {
  if (source) return;
  source = new EventSource('/api/v1/stream');
  source.onopen = () => setConnected(true);
  source.onerror = () => setConnected(false);
  for (const name of ['ti', 'trigger', 'dag', 'reconnected']) {
    source.addEventListener(name, () => {
      for (const listener of listeners) listener(name);
    });
  }
}

export function stopLive() {
  source?.close();
  source = null;
  setConnected(false);
}

function setConnected(value) {
  status.connected = value;
  for (const listener of status.listeners) listener(value);
}

export function onLiveStatus(listener) {
  status.listeners.add(listener);
  listener(status.connected);
  return () => status.listeners.delete(listener);
}

/**
 * Calls `reload` (debounced by `delayMs`) after each live event named in `events`, and after a
 * reconnect. Reloads never overlap: events during one make one more when it is done.
 */
export function useLive(events, reload, delayMs = 250) {
  const latest = useRef(reload);
  latest.current = reload;
  const key = events.join(',');
  useEffect(() => {
    let timer = null;
    let running = false;
    let again = false;
    const run = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        await latest.current();
      } finally {
        running = false;
        if (again) {
          again = false;
          run();
        }
      }
    };
    const wanted = new Set([...events, 'reconnected']);
    const listener = (name) => {
      if (!wanted.has(name)) return;
      clearTimeout(timer);
      timer = setTimeout(run, delayMs);
    };
    listeners.add(listener);
    return () => {
      clearTimeout(timer);
      listeners.delete(listener);
    };
  }, [key, delayMs]);
}
