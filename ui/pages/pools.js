// Pools: slots, and how many are running, queued, deferred and open.
import { api, useLive } from '../api.js';
import { ErrorText, html, useData } from '../common.js';

export function PoolsPage() {
  const { data, error, reload } = useData(() => api('GET', '/pools?limit=100'), []);
  useLive(['ti'], reload, 1000);
  return html`
    <h1>Pools</h1>
    <${ErrorText} error=${error} />
    ${data && html`<table class="list" aria-label="pools">
      <thead><tr><th>Pool</th><th>Slots</th><th>Running</th><th>Queued</th><th>Deferred</th><th>Open</th><th>Description</th></tr></thead>
      <tbody>${data.pools.map((p) => html`<tr>
        <td>${p.name}</td><td>${p.slots === -1 ? 'unlimited' : p.slots}</td><td>${p.running_slots}</td><td>${p.queued_slots}</td>
        <td>${p.deferred_slots}${p.include_deferred ? '' : html` <span class="muted">(not counted)</span>`}</td>
        <td>${p.open_slots ?? '∞'}</td><td>${p.description ?? ''}</td>
      </tr>`)}</tbody>
    </table>
    ${data.total_entries > data.pools.length && html`<p class="muted">${data.pools.length} of ${data.total_entries} shown</p>`}`}`;
}
