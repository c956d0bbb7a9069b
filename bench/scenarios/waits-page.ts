import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { hashPassword, newSecret, sha256 } from '../../src/api/credentials.ts';
import { addToken, createUser } from '../../src/db/api-users.ts';
import { chromiumArgs, findChromium, noChromiumMessage } from '../../test/support/browser.ts';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { freePort } from '../lib/metrics-scrape.ts';
import { serverInfo, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { summarise } from '../lib/stats.ts';
import { cursorAfter, seedWaits } from './waits.ts';

const BIN = fileURLToPath(new URL('../../bin/tsflow.mjs', import.meta.url));
const PASSWORD = 'bench password';
/** The page size the Waits page asks for. */
const PAGE = 50;

async function startApiServer(databaseUrl: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, 'api-server', '--port', String(port)], {
    env: { ...process.env, TSFLOW_DATABASE_URL: databaseUrl, TSFLOW_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`tsflow api-server exited (${code}) before listening`)));
  });
  return child;
}

/** One request after the other: time to the response's headers (first byte) and to its last byte. */
async function timeRequests(url: string, token: string, calls: number): Promise<{ firstByte: number[]; full: number[] }> {
  const firstByte: number[] = [];
  const full: number[] = [];
  for (let i = 0; i <= calls; i++) {
    const t0 = performance.now();
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    const t1 = performance.now();
    const body = await response.arrayBuffer();
    const t2 = performance.now();
    if (response.status !== 200) throw new Error(`${url}: ${response.status} ${Buffer.from(body).toString().slice(0, 200)}`);
    if (i === 0) continue; // warm-up
    firstByte.push(t1 - t0);
    full.push(t2 - t0);
  }
  return { firstByte, full };
}

/**
 * The Waits page over N pending waits (the waits bench's seeding: 100,000, a third without timeout,
 * half owned by a triggerer) served by a real `tsflow api-server` process. `GET /api/v1/triggers`
 * as the page asks it (50 a page, with the total), deep in the list (a cursor after half) and
 * filtered by DAG: time to first byte and to the full body. Then, in headless Chromium (when one is
 * found), the page itself, loaded anew each time: the document's first byte, the triggers call's
 * first byte as the browser saw it, and the table rendered with its 50 rows.
 */
export const waitsPage: Scenario = {
  name: 'waits-page',
  title: 'the Waits page and GET /api/v1/triggers over many pending waits',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const size = context.smoke ? 2000 : 100_000;
    const calls = context.smoke ? 5 : 100;
    const loads = context.smoke ? 2 : 40;
    const db = await openBenchDatabase('waits_page', context.adminUrl);
    let child: ChildProcess | undefined;
    try {
      const seedStart = Date.now();
      await seedWaits(db.database.db, size);
      context.log(`seeded ${size} waits in ${Date.now() - seedStart} ms`);
      await createUser(db.database.db, 'bench', 'operator', await hashPassword(PASSWORD));
      const token = newSecret('tsf_');
      await addToken(db.database.db, 'bench', sha256(token));
      const port = await freePort();
      child = await startApiServer(db.url, port);
      const base = `http://127.0.0.1:${port}`;

      const figures: Record<string, number> = {};
      const deep = await cursorAfter(db.database.db, {}, size / 2);
      const routes: [string, string][] = [
        ['api', `/api/v1/triggers?limit=${PAGE}`],
        ['apiDeep', `/api/v1/triggers?limit=${PAGE}&with_total=false&cursor=${encodeURIComponent(deep)}`],
        ['apiDag', `/api/v1/triggers?limit=${PAGE}&dag_id=waits_7`],
      ];
      for (const [name, route] of routes) {
        const { firstByte, full } = await timeRequests(`${base}${route}`, token, calls);
        const fb = summarise(firstByte);
        const all = summarise(full);
        Object.assign(figures, { [`${name}FirstByteP50Ms`]: fb.p50, [`${name}FirstByteP99Ms`]: fb.p99, [`${name}FullP50Ms`]: all.p50, [`${name}FullP99Ms`]: all.p99 });
        context.log(`${route.split('&cursor')[0]}: first byte p50 ${fb.p50.toFixed(1)} / p99 ${fb.p99.toFixed(1)} ms, full p50 ${all.p50.toFixed(1)} / p99 ${all.p99.toFixed(1)} ms`);
      }

      const executablePath = findChromium();
      let browserNote = 'measured';
      if (!executablePath) {
        browserNote = noChromiumMessage();
        context.log(browserNote);
      } else {
        Object.assign(figures, await measurePage(executablePath, base, loads, context));
      }
      return [
        {
          scenario: 'waits-page',
          title: `Waits page and GET /api/v1/triggers (pages of ${PAGE}) over ${size.toLocaleString('en')} pending waits (provisional: the machine is shared)`,
          settings: { waits: size, apiCalls: calls, pageLoads: executablePath ? loads : 0, browser: browserNote },
          figures,
          targets: [],
          server: serverInfo(db),
        },
      ];
    } finally {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child?.once('exit', resolve));
      }
      await db.close();
    }
  },
};

/** Loads the Waits page `loads` times in a signed-in headless Chromium; figures in ms from the navigation's start. */
async function measurePage(executablePath: string, base: string, loads: number, context: ScenarioContext): Promise<Record<string, number>> {
  const browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs() });
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/ui/`);
    await page.getByLabel('Username').fill('bench');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Waits' }).waitFor();
    const documentFirstByte: number[] = [];
    const apiFirstByte: number[] = [];
    const rendered: number[] = [];
    for (let i = 0; i <= loads; i++) {
      // A new document each time (the query string differs), straight onto the Waits page.
      await page.goto(`${base}/ui/?load=${i}#/waits`);
      await page.locator('table[aria-label="pending waits"] tbody tr').nth(PAGE - 1).waitFor({ timeout: 60_000 });
      const t = (await page.evaluate(`(() => {
        const now = performance.now();
        const nav = performance.getEntriesByType('navigation')[0];
        const api = performance.getEntriesByType('resource').find((e) => e.name.includes('/api/v1/triggers?'));
        return { rendered: now, documentFirstByte: nav.responseStart, apiFirstByte: api ? api.responseStart : -1 };
      })()`)) as { rendered: number; documentFirstByte: number; apiFirstByte: number };
      if (i === 0) continue; // warm-up
      rendered.push(t.rendered);
      documentFirstByte.push(t.documentFirstByte);
      if (t.apiFirstByte >= 0) apiFirstByte.push(t.apiFirstByte);
    }
    const r = summarise(rendered);
    const d = summarise(documentFirstByte);
    const a = summarise(apiFirstByte);
    context.log(`Waits page: document first byte p50 ${d.p50.toFixed(1)} / p99 ${d.p99.toFixed(1)} ms, triggers first byte p50 ${a.p50.toFixed(1)} / p99 ${a.p99.toFixed(1)} ms, table rendered p50 ${r.p50.toFixed(1)} / p99 ${r.p99.toFixed(1)} ms`);
    return {
      pageFirstByteP50Ms: d.p50,
      pageFirstByteP99Ms: d.p99,
      pageTriggersFirstByteP50Ms: a.p50,
      pageTriggersFirstByteP99Ms: a.p99,
      pageRenderedP50Ms: r.p50,
      pageRenderedP99Ms: r.p99,
    };
  } finally {
    await browser.close();
  }
}
