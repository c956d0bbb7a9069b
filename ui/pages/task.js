// A task instance: its fields, and a try's log, followed (NDJSON stream) while the try goes on.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, enc, useLive } from '../api.js';
import { ErrorText, html, StateBadge, useData, when } from '../common.js';

export function TaskPage({ dagId, runId, taskId, query }) {
  const base = `/dags/${enc(dagId)}/dagRuns/${enc(runId)}/taskInstances/${enc(taskId)}`;
  const { data: ti, error, reload } = useData(() => api('GET', base), [base]);
  useLive(['ti', 'trigger'], reload);
  const latestTry = Math.max(ti?.try_number ?? 1, 1);
  const chosen = Number(query.get('try')) || latestTry;
  const tries = Array.from({ length: latestTry }, (_, i) => i + 1);
  const here = `#/dags/${enc(dagId)}/runs/${enc(runId)}/tasks/${enc(taskId)}`;

  return html`
    <p><a href=${`#/dags/${enc(dagId)}/grid`}>← ${dagId} grid</a></p>
    <h1>${taskId} <span class="muted">in ${runId}</span></h1>
    <${ErrorText} error=${error} />
    ${ti && html`
      <dl class="fields">
        <dt>State</dt><dd><${StateBadge} state=${ti.state} /></dd>
        <dt>Try</dt><dd>${ti.try_number} of ${ti.max_tries + 1}</dd>
        <dt>Started</dt><dd>${when(ti.start_date)}</dd>
        <dt>Ended</dt><dd>${when(ti.end_date)}</dd>
        <dt>Host</dt><dd>${ti.hostname ?? '—'}${ti.pid ? ` (pid ${ti.pid})` : ''}</dd>
        <dt>Pool / queue</dt><dd>${ti.pool} / ${ti.queue}</dd>
        ${ti.trigger_id !== null && html`<dt>Waiting on</dt><dd>trigger <a href=${`#/waits?dag_id=${enc(dagId)}&task_id=${enc(taskId)}`}>${ti.trigger_id}</a>${ti.trigger_timeout ? `, times out ${when(ti.trigger_timeout)}` : ''}</dd>`}
        ${ti.error && html`<dt>Error</dt><dd class="error">${ti.error}</dd>`}
      </dl>
      <h2>Log ${tries.length > 1 && html`<span class="muted">try ${tries.map((n) => html` <a href=${`${here}?try=${n}`} aria-current=${n === chosen ? 'page' : undefined}>${n === chosen ? html`<b>${n}</b>` : n}</a>`)}</span>`}</h2>
      <${Log} key=${`${base}/${chosen}`} path=${`${base}/logs/${chosen}`} />`}`;
}

/** The lines of one try's log, streamed: the response grows while the try runs and ends with it. */
function Log({ path }) {
  const [lines, setLines] = useState([]);
  const [status, setStatus] = useState('loading');
  const box = useRef(null);
  useEffect(() => {
    const controller = new AbortController();
    (async () => {
      try {
        const response = await fetch(`/api/v1${path}?follow=true`, { headers: { accept: 'application/x-ndjson' }, signal: controller.signal });
        if (!response.ok) {
          const problem = await response.json().catch(() => null);
          throw new Error(problem?.detail ?? `${response.status} ${response.statusText}`);
        }
        setStatus('following');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let rest = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          rest += value;
          const parts = rest.split('\n');
          rest = parts.pop() ?? '';
          const fresh = parts.filter((p) => p.trim() !== '').map((p) => JSON.parse(p).text);
          if (fresh.length > 0) setLines((old) => [...old, ...fresh]);
        }
        setStatus('done');
      } catch (error) {
        if (!controller.signal.aborted) setStatus(`error: ${error.message}`);
      }
    })();
    return () => controller.abort();
  }, [path]);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines]);
  return html`
    <p class="muted">${status === 'following' ? 'following the log while the try goes on…' : status === 'done' ? `${lines.length} line(s); the try is over` : status}</p>
    <pre class="log" ref=${box} aria-label="task log">${lines.length === 0 ? '(no log lines yet)' : lines.join('\n')}</pre>`;
}
