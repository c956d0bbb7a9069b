// DAGs: schedule, last run, next run, paused toggle, trigger with conf.
import { useState } from 'preact/hooks';
import { api, canOperate, enc, qs, useLive } from '../api.js';
import { ErrorText, html, StateBadge, useData, when } from '../common.js';

const PAGE = 50;

export function DagsPage({ user }) {
  const [offset, setOffset] = useState(0);
  const [search, setSearch] = useState('');
  const { data, error, reload } = useData(async () => {
    const page = await api('GET', `/dags${qs({ limit: PAGE, offset, dag_id_pattern: search })}`);
    // The last run of each DAG on the page (a page holds at most PAGE DAGs).
    const lastRuns = await Promise.all(page.dags.map((d) => api('GET', `/dags/${enc(d.dag_id)}/dagRuns?limit=1&order_by=-logical_date`).then((r) => r.dag_runs[0] ?? null)));
    return { ...page, lastRuns };
  }, [offset, search]);
  useLive(['dag', 'ti'], reload, 1000);
  const [triggering, setTriggering] = useState(null);
  const [message, setMessage] = useState(null);
  const [actionError, setActionError] = useState(null);
  const operator = canOperate(user);

  const togglePaused = async (dag) => {
    setActionError(null);
    try {
      await api('PATCH', `/dags/${enc(dag.dag_id)}`, { is_paused: !dag.is_paused });
      reload();
    } catch (e) {
      setActionError(e);
    }
  };

  return html`
    <h1>DAGs</h1>
    <div class="toolbar">
      <label>DAG id contains<input type="search" value=${search} onInput=${(e) => { setOffset(0); setSearch(e.currentTarget.value); }} /></label>
    </div>
    <${ErrorText} error=${error ?? actionError} />
    ${message && html`<p class="notice" role="status">${message}</p>`}
    ${triggering && html`<${TriggerDialog} dag=${triggering} onDone=${(text) => { setTriggering(null); setMessage(text); reload(); }} onCancel=${() => setTriggering(null)} />`}
    ${data && html`
      <table class="list">
        <thead><tr><th>DAG</th><th>Schedule</th><th>Last run</th><th>Next run</th><th>Paused</th>${operator && html`<th>Actions</th>`}</tr></thead>
        <tbody>
          ${data.dags.map((d, i) => {
            const last = data.lastRuns[i];
            return html`<tr>
              <td><a href=${`#/dags/${enc(d.dag_id)}/grid`}>${d.dag_id}</a>${d.description && html`<div class="muted">${d.description}</div>`}</td>
              <td>${d.timetable_summary ?? html`<span class="muted">none</span>`}</td>
              <td>${last ? html`<${StateBadge} state=${last.state} /> ${when(last.logical_date)}` : html`<span class="muted">no runs</span>`}</td>
              <td>${d.next_dagrun_run_after ? when(d.next_dagrun_run_after) : html`<span class="muted">—</span>`}</td>
              <td><label><input type="checkbox" aria-label=${`paused ${d.dag_id}`} checked=${d.is_paused} disabled=${!operator} onChange=${() => togglePaused(d)} /> ${d.is_paused ? 'paused' : 'active'}</label></td>
              ${operator && html`<td><button onClick=${() => { setMessage(null); setTriggering(d); }}>Trigger</button></td>`}
            </tr>`;
          })}
        </tbody>
      </table>
      <div class="pager">
        <button disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>Previous</button>
        <span class="muted">${data.total_entries === 0 ? 'no DAGs' : `${offset + 1}–${offset + data.dags.length} of ${data.total_entries}`}</span>
        <button disabled=${offset + PAGE >= data.total_entries} onClick=${() => setOffset(offset + PAGE)}>Next</button>
      </div>`}`;
}

function TriggerDialog({ dag, onDone, onCancel }) {
  const [conf, setConf] = useState('{}');
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(conf);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('conf must be a JSON object, such as {"key": 1}');
    } catch (e) {
      setError(e);
      return;
    }
    try {
      const run = await api('POST', `/dags/${enc(dag.dag_id)}/dagRuns`, { conf: parsed });
      onDone(`Triggered ${dag.dag_id}: run ${run.dag_run_id}`);
      location.hash = `#/dags/${enc(dag.dag_id)}/grid`;
    } catch (e) {
      setError(e);
    }
  };
  return html`
    <form class="dialog" onSubmit=${submit} aria-label=${`trigger ${dag.dag_id}`}>
      <h2>Trigger ${dag.dag_id}</h2>
      <label>Configuration (JSON)<textarea name="conf" value=${conf} onInput=${(e) => setConf(e.currentTarget.value)} /></label>
      <${ErrorText} error=${error} />
      <button class="primary" type="submit">Trigger run</button> <button type="button" onClick=${onCancel}>Cancel</button>
    </form>`;
}
