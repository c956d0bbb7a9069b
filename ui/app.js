// The tsflow web UI: hash routes, one page module each; the session comes from /auth/me.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { login, logout, onLiveStatus, onSignedOutCall, startLive, stopLive, whoAmI } from './api.js';
import { html } from './common.js';
import { DagsPage } from './pages/dags.js';
import { GridPage } from './pages/grid.js';
import { TaskPage } from './pages/task.js';
import { WaitsPage } from './pages/waits.js';
import { ClusterPage } from './pages/cluster.js';
import { PoolsPage } from './pages/pools.js';
import { RequiredActionsPage } from './pages/required-actions.js';

/** `#/dags/a%20b/grid?x=1` → { parts: ['dags', 'a b', 'grid'], query: URLSearchParams }. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathText, queryText = ''] = raw.split('?');
  const parts = pathText.split('/').filter((p) => p !== '').map(decodeURIComponent);
  return { parts, query: new URLSearchParams(queryText) };
}

function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const changed = () => setRoute(parseHash());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

function page(route, user) {
  const [first, id, second, runId, third, taskId] = route.parts;
  switch (first) {
    case undefined:
    case 'dags':
      if (id === undefined) return html`<${DagsPage} user=${user} />`;
      if (second === 'runs' && third === 'tasks' && taskId !== undefined) return html`<${TaskPage} key=${route.parts.join('/')} dagId=${id} runId=${runId} taskId=${taskId} query=${route.query} />`;
      return html`<${GridPage} key=${id} dagId=${id} user=${user} />`;
    case 'waits':
      return html`<${WaitsPage} user=${user} query=${route.query} />`;
    case 'cluster':
      return html`<${ClusterPage} />`;
    case 'pools':
      return html`<${PoolsPage} />`;
    case 'actions':
      return html`<${RequiredActionsPage} user=${user} />`;
    default:
      return html`<p class="error">No page '${first}'. <a href="#/dags">DAGs</a></p>`;
  }
}

function LiveBadge() {
  const [connected, setConnected] = useState(false);
  useEffect(() => onLiveStatus(setConnected), []);
  return html`<span class=${`live ${connected ? '' : 'off'}`} title="live updates from the server (server-sent events)">${connected ? 'live' : 'offline'}</span>`;
}

function Shell({ user, onLogout }) {
  const route = useRoute();
  const current = route.parts[0] ?? 'dags';
  const link = (name, label) => html`<a href=${`#/${name}`} class=${current === name ? 'active' : ''}>${label}</a>`;
  return html`
    <header class="top">
      <span class="brand">tsflow</span>
      <nav>${link('dags', 'DAGs')}${link('waits', 'Waits')}${link('cluster', 'Cluster')}${link('pools', 'Pools')}${link('actions', 'Required actions')}</nav>
      <span class="who">${user.username} (${user.role})</span>
      <${LiveBadge} />
      <button onClick=${onLogout}>Log out</button>
    </header>
    <main>${page(route, user)}</main>`;
}

function LoginPage({ onLogin }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      onLogin(await login(String(form.get('username')), String(form.get('password'))));
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  };
  return html`
    <form class="login" onSubmit=${submit}>
      <h1>Sign in to tsflow</h1>
      <label>Username<input name="username" autocomplete="username" required /></label>
      <label>Password<input name="password" type="password" autocomplete="current-password" required /></label>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button class="primary" type="submit" disabled=${busy}>Sign in</button>
    </form>`;
}

function App() {
  const [user, setUser] = useState(undefined);
  useEffect(() => {
    onSignedOutCall(() => setUser(null));
    whoAmI().then(setUser, () => setUser(null));
  }, []);
  useEffect(() => {
    if (user) startLive();
    else stopLive();
  }, [user]);
  if (user === undefined) return html`<p class="loading">Loading tsflow…</p>`;
  if (user === null) return html`<${LoginPage} onLogin=${setUser} />`;
  return html`<${Shell} user=${user} onLogout=${async () => {
    await logout();
    setUser(null);
  }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
