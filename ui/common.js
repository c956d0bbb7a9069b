// Helpers every page shares: htm bound to preact, Airflow's state colours, times, a data hook.
import { h } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

/** Airflow's task instance and run state colours. */
export const STATE_COLORS = {
  success: '#008000',
  running: '#00ff00',
  failed: '#ff0000',
  upstream_failed: '#ffa500',
  up_for_retry: '#ffd700',
  up_for_reschedule: '#40e0d0',
  queued: '#808080',
  scheduled: '#d2b48c',
  deferred: '#9370db',
  skipped: '#ff69b4',
  removed: '#d3d3d3',
};

export function StateBadge({ state }) {
  const color = STATE_COLORS[state] ?? '#fff';
  const dark = ['running', 'up_for_reschedule', 'scheduled', 'removed', 'up_for_retry', 'skipped'].includes(state) || state === null;
  return html`<span class="state" style=${{ background: color, color: dark ? '#111' : '#fff', border: state ? 'none' : '1px solid #ccc' }}>${state ?? 'none'}</span>`;
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** 42s, 3m 5s, 2h 10m, 3d 4h. */
export function span(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const sign = seconds < 0 ? '-' : '';
  let s = Math.abs(Math.round(seconds));
  if (s < 60) return `${sign}${s}s`;
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts = [];
  for (const [name, size] of units) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${name}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return sign + parts.join(' ');
}

export function duration(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? Date.parse(endIso) : Date.now();
  return (end - Date.parse(startIso)) / 1000;
}

/**
 * Loads data with `load()` on mount and whenever `deps` change; `reload()` loads again keeping the
 * data shown meanwhile (no flicker on live updates). Answers of superseded loads are dropped.
 */
export function useData(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    setState({ data: null, error: null, loading: true });
    reload();
  }, [reload]);
  return { ...state, reload };
}

export function ErrorText({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message}</p>`;
}

export const taskLink = (dagId, runId, taskId) => `#/dags/${encodeURIComponent(dagId)}/runs/${encodeURIComponent(runId)}/tasks/${encodeURIComponent(taskId)}`;
