// Required actions: the human-in-the-loop requests awaiting an answer, oldest first. Each shows its
// subject, body, params as inputs and its options as buttons (checkboxes and Respond when several may
// be chosen); answering PATCHes /hitlDetails, which decides whether this user may (assignee or admin).
import { useState } from 'preact/hooks';
import { api, enc, qs, useLive } from '../api.js';
import { ErrorText, html, taskLink, useData, when } from '../common.js';

/** A param's input value back to JSON, by the type of its default. */
function paramValue(initial, text, checked) {
  if (typeof initial === 'boolean') return checked;
  if (typeof initial === 'number') {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`'${text}' is not a number`);
    return n;
  }
  if (typeof initial === 'string') return text;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`'${text}' is not valid JSON`);
  }
}

function ParamInput({ name, initial }) {
  if (typeof initial === 'boolean') return html`<label><input type="checkbox" name=${`param:${name}`} checked=${initial} /> ${name}</label>`;
  const value = typeof initial === 'string' ? initial : typeof initial === 'number' ? String(initial) : JSON.stringify(initial);
  return html`<label>${name}<input name=${`param:${name}`} value=${value} type=${typeof initial === 'number' ? 'number' : 'text'} /></label>`;
}

function RequestCard({ request, user, onAnswered }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const label = `${request.dag_id}.${request.task_id}${request.map_index >= 0 ? `[${request.map_index}]` : ''}`;
  const mayAnswer = user.role === 'admin' || (request.assignees.length === 0 ? user.role !== 'viewer' : request.assignees.includes(user.username));

  const submit = async (event) => {
    event.preventDefault();
    setError(null);
    const form = event.currentTarget;
    const data = new FormData(form);
    try {
      const chosen = request.multiple ? data.getAll('option').map(String) : [String(event.submitter?.value ?? '')];
      if (chosen.length === 0 || chosen[0] === '') throw new Error('choose at least one option');
      const params = {};
      for (const [name, initial] of Object.entries(request.params)) {
        const input = form.elements.namedItem(`param:${name}`);
        params[name] = paramValue(initial, String(data.get(`param:${name}`) ?? ''), input?.checked ?? false);
      }
      setBusy(true);
      const path = `/hitlDetails/${enc(request.dag_id)}/${enc(request.dag_run_id)}/${enc(request.task_id)}${qs({ map_index: request.map_index >= 0 ? request.map_index : undefined })}`;
      await api('PATCH', path, { chosen_options: chosen, params_input: params });
      onAnswered(`Answered ${label}: ${chosen.join(', ')}.`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const params = Object.entries(request.params);
  return html`
    <form class="card" onSubmit=${submit} aria-label=${`request ${label}`}>
      <h2 style=${{ marginTop: 0 }}>${request.subject}</h2>
      <p class="muted">
        <a href=${taskLink(request.dag_id, request.dag_run_id, request.task_id)}>${label}</a> · ${request.dag_run_id} · asked ${when(request.created_at)}
        · ${request.assignees.length === 0 ? 'for any operator' : `for ${request.assignees.join(', ')}`}
        ${request.defaults && html` · default ${request.defaults.join(', ')} at the timeout`}
      </p>
      ${request.body && html`<div style=${{ whiteSpace: 'pre-wrap' }}>${request.body}</div>`}
      ${params.length > 0 && html`<div class="toolbar">${params.map(([name, initial]) => html`<${ParamInput} name=${name} initial=${initial} />`)}</div>`}
      <${ErrorText} error=${error} />
      ${!mayAnswer && html`<p class="muted">Only ${request.assignees.length === 0 ? 'an operator' : request.assignees.join(', ')} or an admin may answer.</p>`}
      <div class="toolbar">
        ${request.multiple
          ? html`${request.options.map((o) => html`<label><input type="checkbox" name="option" value=${o} /> ${o}</label>`)}
              <button class="primary" type="submit" disabled=${busy || !mayAnswer}>Respond</button>`
          : request.options.map((o) => html`<button class="primary" type="submit" name="option" value=${o} disabled=${busy || !mayAnswer}>${o}</button>`)}
      </div>
    </form>`;
}

export function RequiredActionsPage({ user }) {
  const { data, error, reload } = useData(() => api('GET', `/hitlDetails${qs({ pending: true, limit: 100 })}`), []);
  useLive(['ti', 'trigger'], reload, 500);
  const [message, setMessage] = useState(null);
  return html`
    <h1>Required actions</h1>
    <${ErrorText} error=${error} />
    ${message && html`<p class="notice" role="status">${message}</p>`}
    ${data && data.hitl_details.length === 0 && html`<p class="muted">No task is waiting for an answer.</p>`}
    ${data?.hitl_details.map((r) => html`<${RequestCard} key=${`${r.dag_id}/${r.dag_run_id}/${r.task_id}/${r.map_index}`} request=${r} user=${user} onAnswered=${(text) => {
      setMessage(text);
      reload();
    }} />`)}
    ${data && data.total_entries > data.hitl_details.length && html`<p class="muted">${data.hitl_details.length} of ${data.total_entries} shown (oldest first); tsflow hitl list --pending shows all.</p>`}`;
}
