// Waits: every pending trigger with its task, kind, target, owner, age and time left; filtered and
// paged on the server (keyset cursor); operators fire, cancel or extend one. Beside it, the fire
// lateness of recent time triggers.
import { useState } from 'preact/hooks';
import { api, canOperate, qs, useLive } from '../api.js';
import { ErrorText, html, span, taskLink, useData, when } from '../common.js';
import { LatenessPlot } from './lateness.js';

const FILTERS = ['dag_id', 'task_id', 'search', 'classpath', 'triggerer_id', 'order_by'];
const PAGE = 50;
const CLASSPATHS = ['tsflow.triggers.DateTimeTrigger', 'tsflow.triggers.FileExistsTrigger', 'tsflow.triggers.HttpPollTrigger'];

function filtersOf(query) {
  const out = {};
  for (const name of FILTERS) {
    const value = query.get(name);
    if (value) out[name] = value;
  }
  return out;
}

function target(w) {
  const t = w.waits_for;
  if (t.kind === 'time') return html`due ${when(t.due_at)}`;
  if (t.kind === 'file') return html`<code>${t.path}</code>`;
  if (t.kind === 'http') return html`${t.method} <code>${t.url}</code>`;
  return html`<span class="muted">${w.classpath}</span>`;
}

export function WaitsPage({ user, query }) {
  const filters = filtersOf(query);
  const filterKey = JSON.stringify(filters);
  // Cursors of the pages before the one shown (keyset paging goes forward; back pops this stack).
  const [cursors, setCursors] = useState({ key: filterKey, stack: [], current: undefined });
  const paging = cursors.key === filterKey ? cursors : { key: filterKey, stack: [], current: undefined };
  const { data, error, reload } = useData(() => api('GET', `/triggers${qs({ ...filters, limit: PAGE, cursor: paging.current })}`), [filterKey, paging.current]);
  useLive(['trigger', 'ti'], reload, 500);
  const [message, setMessage] = useState(null);
  const [actionError, setActionError] = useState(null);
  const operator = canOperate(user);

  const apply = (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const next = {};
    for (const name of FILTERS) {
      const value = String(form.get(name) ?? '').trim();
      if (value !== '') next[name] = value;
    }
    location.hash = `#/waits${qs(next)}`;
  };

  const operate = async (w, action) => {
    setMessage(null);
    setActionError(null);
    const label = `${w.dag_id}.${w.task_id}`;
    try {
      if (action === 'fire') {
        await api('POST', `/triggers/${w.trigger_id}/fire`);
        setMessage(`Fired trigger ${w.trigger_id}: ${label} resumes.`);
      } else if (action === 'cancel') {
        if (!confirm(`Cancel the wait of ${label}? Its try fails with "cancelled by ${user.username}" (retries apply).`)) return;
        const answer = await api('POST', `/triggers/${w.trigger_id}/cancel`);
        setMessage(`Cancelled trigger ${w.trigger_id}: ${label} fails with "${answer.error}".`);
      } else {
        const text = prompt(`Extend the timeout of ${label} by how many minutes?`, '60');
        if (text === null) return;
        const minutes = Number(text);
        if (!Number.isFinite(minutes) || minutes <= 0) throw new Error(`'${text}' is not a number of minutes above zero`);
        const body = w.trigger_timeout ? { by_seconds: Math.round(minutes * 60) } : { until: new Date(Date.now() + minutes * 60_000).toISOString() };
        const answer = await api('POST', `/triggers/${w.trigger_id}/extend`, body);
        setMessage(`Trigger ${w.trigger_id} now times out at ${when(answer.trigger_timeout)}.`);
      }
      reload();
    } catch (e) {
      setActionError(e);
    }
  };

  return html`
    <h1>Waits</h1>
    <div class="cols">
      <div class="wide">
        <form class="toolbar" onSubmit=${apply} aria-label="filter waits">
          <label>DAG<input name="dag_id" value=${filters.dag_id ?? ''} /></label>
          <label>Task<input name="task_id" value=${filters.task_id ?? ''} /></label>
          <label>Contains<input name="search" type="search" value=${filters.search ?? ''} /></label>
          <label>Kind<select name="classpath" value=${filters.classpath ?? ''}>
            <option value="">any</option>
            ${CLASSPATHS.map((c) => html`<option value=${c}>${c.split('.').pop()}</option>`)}
          </select></label>
          <label>Triggerer<input name="triggerer_id" size="8" placeholder="id or unassigned" value=${filters.triggerer_id ?? ''} /></label>
          <label>Order<select name="order_by" value=${filters.order_by ?? 'timeout'}>
            <option value="timeout">soonest timeout</option><option value="-timeout">latest timeout</option>
            <option value="created">oldest</option><option value="-created">newest</option>
          </select></label>
          <button type="submit">Filter</button>
          <a href="#/waits">clear</a>
        </form>
        <${ErrorText} error=${error ?? actionError} />
        ${message && html`<p class="notice" role="status">${message}</p>`}
        ${data && html`
          <table class="list" aria-label="pending waits">
            <thead><tr><th>Trigger</th><th>Task</th><th>Kind</th><th>Waits for</th><th>Triggerer</th><th>Age</th><th>Time left</th>${operator && html`<th>Operate</th>`}</tr></thead>
            <tbody>
              ${data.triggers.length === 0 && html`<tr><td colspan="8" class="muted">No pending waits${Object.keys(filters).length > 0 ? ' match these filters' : ''}.</td></tr>`}
              ${data.triggers.map((w) => html`
                <tr>
                  <td>${w.trigger_id}</td>
                  <td><a href=${taskLink(w.dag_id, w.dag_run_id, w.task_id)}>${w.dag_id}.${w.task_id}</a><div class="muted">${w.dag_run_id} · try ${w.try_number}</div></td>
                  <td>${w.waits_for.kind}</td>
                  <td>${target(w)}</td>
                  <td>${w.triggerer_id === null ? html`<span class="muted">unassigned</span>` : `${w.triggerer_id} (${w.triggerer_hostname ?? '?'})`}</td>
                  <td>${span(w.age_seconds)}</td>
                  <td>${w.time_left_seconds === null ? html`<span class="muted">no timeout</span>` : span(w.time_left_seconds)}</td>
                  ${operator && html`<td style=${{ whiteSpace: 'nowrap' }}>
                    <button onClick=${() => operate(w, 'fire')}>Fire now</button>
                    <button onClick=${() => operate(w, 'extend')}>Extend</button>
                    <button class="danger" onClick=${() => operate(w, 'cancel')}>Cancel</button>
                  </td>`}
                </tr>`)}
            </tbody>
          </table>
          <div class="pager">
            <button disabled=${paging.stack.length === 0} onClick=${() => setCursors({ key: filterKey, stack: paging.stack.slice(0, -1), current: paging.stack.at(-1) })}>Previous</button>
            <span class="muted">page ${paging.stack.length + 1} · ${data.triggers.length} shown of ${data.total_entries === null ? 'many' : `${data.total_exact ? '' : 'about '}${data.total_entries.toLocaleString('en')}`} pending</span>
            <button disabled=${!data.next_cursor} onClick=${() => setCursors({ key: filterKey, stack: [...paging.stack, paging.current], current: data.next_cursor })}>Next</button>
          </div>`}
      </div>
      <div class="side">
        <h2 style=${{ marginTop: 0 }}>Fire lateness (time triggers, last hour)</h2>
        <${LatenessPlot} />
      </div>
    </div>`;
}
