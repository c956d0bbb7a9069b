// A DAG's grid, Airflow's layout: one column per run (newest right), one row per task, each square
// coloured by its task instance's state; a square opens the task instance with its log.
import { api, enc, useLive } from '../api.js';
import { duration, ErrorText, html, span, STATE_COLORS, taskLink, useData, when } from '../common.js';

const RUNS = 25;

/** Task ids upstream first (Airflow's grid order), ties by id. */
function topological(tasks) {
  const byId = new Map(tasks.map((t) => [t.task_id, t]));
  const done = new Set();
  const out = [];
  const visit = (task) => {
    if (done.has(task.task_id)) return;
    done.add(task.task_id);
    for (const up of [...task.upstream_task_ids].sort()) if (byId.has(up)) visit(byId.get(up));
    out.push(task.task_id);
  };
  for (const task of [...tasks].sort((a, b) => a.task_id.localeCompare(b.task_id))) visit(task);
  return out;
}

export function GridPage({ dagId }) {
  const { data, error, reload } = useData(async () => {
    const [dag, runs] = await Promise.all([api('GET', `/dags/${enc(dagId)}`), api('GET', `/dags/${enc(dagId)}/dagRuns?limit=${RUNS}&order_by=-logical_date`)]);
    const ordered = [...runs.dag_runs].reverse();
    const tis = await Promise.all(
      ordered.map((r) => api('GET', `/dags/${enc(dagId)}/dagRuns/${enc(r.dag_run_id)}/taskInstances?limit=100`).then((x) => new Map(x.task_instances.map((t) => [t.task_id, t])))),
    );
    return { dag, runs: ordered, tis, taskIds: topological(dag.tasks), total: runs.total_entries };
  }, [dagId]);
  // A reload reads up to 27 lists: at most one at a time, and not more often than every 0.5 s.
  useLive(['ti', 'dag'], reload, 500);

  if (error && !data) return html`<${ErrorText} error=${error} />`;
  if (!data) return html`<p class="muted">Loading…</p>`;
  const { dag, runs, tis, taskIds } = data;
  const longest = Math.max(1, ...runs.map((r) => duration(r.start_date, r.end_date) ?? 0));
  return html`
    <h1>${dag.dag_id} <span class="muted">grid</span></h1>
    <p class="muted">${dag.description ?? ''} Schedule: ${dag.timetable_summary ?? 'none'} · ${dag.is_paused ? 'paused' : 'active'} · ${data.total} run(s)${data.total > RUNS ? `, the last ${RUNS} shown` : ''}</p>
    <${ErrorText} error=${error} />
    ${runs.length === 0
      ? html`<p class="muted">No runs yet. Trigger one from the <a href="#/dags">DAGs</a> page.</p>`
      : html`
      <table class="grid" aria-label=${`grid of ${dag.dag_id}`}>
        <tbody>
          <tr class="runs">
            <th></th>
            ${runs.map((r) => {
              const d = duration(r.start_date, r.end_date);
              const height = 6 + Math.round(36 * ((d ?? 0) / longest));
              return html`<td><span class="runbar" role="img" aria-label=${`run ${r.dag_run_id} ${r.state}`} title=${`${r.dag_run_id}\n${r.state} · ${when(r.logical_date)}${d === null ? '' : ` · ${span(d)}`}`} style=${{ height: `${height}px`, background: STATE_COLORS[r.state] ?? '#ccc' }}></span></td>`;
            })}
          </tr>
          ${taskIds.map((taskId) => html`
            <tr>
              <th class="task" scope="row">${taskId}</th>
              ${runs.map((r, i) => {
                const ti = tis[i].get(taskId);
                const state = ti?.state ?? null;
                const label = `${taskId} in ${r.dag_run_id}: ${state ?? 'no status'}`;
                return html`<td><a class=${`sq ${state ? '' : 'none'}`} href=${taskLink(dagId, r.dag_run_id, taskId)} aria-label=${label} title=${label} data-state=${state ?? 'none'} style=${state ? { background: STATE_COLORS[state] } : {}}></a></td>`;
              })}
            </tr>`)}
        </tbody>
      </table>
      <${Legend} />`}`;
}

function Legend() {
  return html`<p class="muted" style=${{ marginTop: '.6rem' }}>${Object.entries(STATE_COLORS).map(([state, color]) => html`<span style=${{ marginRight: '.8rem', whiteSpace: 'nowrap' }}><span style=${{ display: 'inline-block', width: '10px', height: '10px', background: color, marginRight: '.25rem', border: '1px solid rgba(0,0,0,.2)' }}></span>${state}</span>`)}</p>`;
}
