import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { startApi, type ApiRig } from './support/api.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/* The web UI's files as the API server serves them: no build step, public, nothing else. */
describe('web UI files served by the API server (issue 14)', function () {
  this.timeout(60_000);
  let tdb: TestDatabase;
  let api: ApiRig;

  before(async () => {
    tdb = await createTestDatabase();
    api = await startApi(tdb.database);
  });
  after(async () => {
    await api?.stop();
    await tdb?.drop();
  });

  const get = (path: string) => fetch(`${api.url}${path}`, { redirect: 'manual' });

  it('/ redirects to /ui/, which serves the page with a CSP that allows its import map by hash', async () => {
    const root = await get('/');
    expect(root.status).to.equal(302);
    expect(root.headers.get('location')).to.equal('/ui/');
    const page = await get('/ui/');
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.match(/^text\/html/);
    const html = await page.text();
    const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
    expect(JSON.parse(importMap).imports).to.have.keys(['preact', 'preact/hooks', 'htm']);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).to.include(`script-src 'self' 'sha256-${createHash('sha256').update(importMap).digest('base64')}'`);
    expect(csp).to.include("frame-ancestors 'none'");
  });

  it('serves the UI modules and the vendored Preact and htm from node_modules, and nothing else', async () => {
    for (const path of ['/ui/app.js', '/ui/pages/waits.js', '/ui/style.css', '/ui/vendor/preact.mjs', '/ui/vendor/hooks.mjs', '/ui/vendor/htm.mjs']) {
      const answer = await get(path);
      expect(answer.status, path).to.equal(200);
      expect(answer.headers.get('content-type'), path).to.match(/javascript|css/);
    }
    for (const path of ['/ui/vendor/react.mjs', '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/pages/../../src/api/server.ts', '/ui/index.html.bak']) {
      expect((await get(path)).status, path).to.equal(404);
    }
  });

  it('the files are public; the API behind them is not', async () => {
    expect((await get('/ui/app.js')).status).to.equal(200);
    expect((await get('/api/v1/dags')).status).to.equal(401);
  });
});
