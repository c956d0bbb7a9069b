// Cluster: the running schedulers, triggerers (with the waits each holds against its capacity),
// DAG processors and workers, with their heartbeat age. Heartbeats send no NOTIFY, so ages count up
// in the browser and the list is read again every 15 s (and on live events).
import { useEffect, useState } from 'preact/hooks';
import { api, useLive } from '../api.js';
import { ErrorText, html, span, useData, when } from '../common.js';

const KINDS = [
  ['scheduler', 'Schedulers'],
  ['triggerer', 'Triggerers'],
  ['dag_processor', 'DAG processors'],
  ['worker', 'Workers'],
];

export function ClusterPage() {
  const { data, error, reload } = useData(async () => {
    const { jobs } = await api('GET', '/jobs?state=running&limit=100');
    const used = await Promise.all(
      jobs.map((j) => (j.job_type === 'triggerer' ? api('GET', `/triggers?triggerer_id=${j.id}&limit=1`).then((r) => r.total_entries) : Promise.resolve(null))),
    );
    return { jobs: jobs.map((j, i) => ({ ...j, used: used[i] })), loadedAt: Date.now() };
  }, []);
  useLive(['trigger', 'dag'], reload, 1000);
  const [, setTick] = useState(0);
  useEffect(() => {
    const ticker = setInterval(() => setTick((n) => n + 1), 1000);
    const refresh = setInterval(reload, 15_000);
    return () => {
      clearInterval(ticker);
      clearInterval(refresh);
    };
  }, [reload]);
  if (!data) return html`<h1>Cluster</h1><${ErrorText} error=${error} />`;
  const elapsed = (Date.now() - data.loadedAt) / 1000;
  return html`
    <h1>Cluster</h1>
    <${ErrorText} error=${error} />
    ${KINDS.map(([kind, title]) => {
      const jobs = data.jobs.filter((j) => j.job_type === kind);
      return html`
        <h2>${title} <span class="muted">(${jobs.length})</span></h2>
        ${jobs.length === 0
          ? html`<p class="muted">none running</p>`
          : html`<table class="list" aria-label=${title}>
              <thead><tr><th>Job</th><th>Host</th><th>Started</th><th>Heartbeat age</th><th>Health</th>${kind === 'triggerer' && html`<th>Capacity used</th>`}${kind === 'worker' && html`<th>Queues</th>`}</tr></thead>
              <tbody>${jobs.map((j) => html`<tr>
                <td>${j.id}</td><td>${j.hostname} <span class="muted">pid ${j.pid}</span></td><td>${when(j.start_date)}</td>
                <td>${span(j.heartbeat_age_seconds + elapsed)}</td>
                <td>${j.alive ? 'healthy' : html`<span class="error">no recent heartbeat</span>`}</td>
                ${kind === 'triggerer' && html`<td>${j.used ?? '?'} / ${j.capacity ?? '∞'}</td>`}
                ${kind === 'worker' && html`<td>${(j.queues ?? []).join(', ')}</td>`}
              </tr>`)}</tbody>
            </table>`}`;
    })}`;
}
