// A scatter plot of how late recent time triggers fired (inline SVG): x fired at, y lateness.
import { api, useLive } from '../api.js';
import { ErrorText, html, useData } from '../common.js';

const W = 360;
const H = 220;
const PAD = { left: 44, right: 10, top: 10, bottom: 28 };

function niceMax(value) {
  if (value <= 0) return 10;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

export function LatenessPlot() {
  const { data, error, reload } = useData(() => api('GET', '/triggers/lateness?limit=2000'), []);
  useLive(['ti'], reload, 2000);
  if (error) return html`<${ErrorText} error=${error} />`;
  if (!data) return html`<p class="muted">Loading…</p>`;
  const points = data.points;
  if (points.length === 0) return html`<p class="muted">No time trigger fired in the last hour.</p>`;
  const times = points.map((p) => Date.parse(p.fired_at));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1000);
  const yMax = niceMax(Math.max(...points.map((p) => p.lateness_ms)));
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (ms) => H - PAD.bottom - (Math.max(0, ms) / yMax) * (H - PAD.top - PAD.bottom);
  const clock = (t) => new Date(t).toISOString().slice(11, 19);
  const line = (ms, label, color) =>
    ms === null ? null : html`<line x1=${PAD.left} x2=${W - PAD.right} y1=${y(ms)} y2=${y(ms)} stroke=${color} stroke-dasharray="4 3" /><text x=${W - PAD.right} y=${y(ms) - 3} text-anchor="end" font-size="10" fill=${color}>${label} ${ms} ms</text>`;
  return html`
    <svg class="plot" viewBox=${`0 0 ${W} ${H}`} width=${W} height=${H} role="img" aria-label=${`fire lateness of ${points.length} time triggers: p50 ${data.p50_ms} ms, p99 ${data.p99_ms} ms`}>
      <line x1=${PAD.left} x2=${PAD.left} y1=${PAD.top} y2=${H - PAD.bottom} stroke="#999" />
      <line x1=${PAD.left} x2=${W - PAD.right} y1=${H - PAD.bottom} y2=${H - PAD.bottom} stroke="#999" />
      <text x=${PAD.left - 4} y=${PAD.top + 8} text-anchor="end" font-size="10">${yMax}</text>
      <text x=${PAD.left - 4} y=${H - PAD.bottom} text-anchor="end" font-size="10">0 ms</text>
      <text x=${PAD.left} y=${H - 8} font-size="10">${clock(t0)}</text>
      <text x=${W - PAD.right} y=${H - 8} text-anchor="end" font-size="10">${clock(t1)}</text>
      ${points.map((p) => html`<circle cx=${x(Date.parse(p.fired_at))} cy=${y(p.lateness_ms)} r="2.5" fill="#017cee" fill-opacity="0.6"><title>${p.dag_id}.${p.task_id}: ${p.lateness_ms} ms</title></circle>`)}
      ${line(data.p50_ms, 'p50', '#2e7d32')}
      ${line(data.p99_ms, 'p99', '#c62828')}
    </svg>
    <p class="muted">${points.length} fire(s) · p50 ${data.p50_ms} ms · p99 ${data.p99_ms} ms · max ${data.max_ms} ms</p>`;
}
