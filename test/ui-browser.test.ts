import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { chromiumArgs, chromiumChildren, createUserWithCli, findChromium, noChromiumMessage } from './support/browser.ts';
import { CliProcess, freePort } from './support/cli-process.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/*
 * The web UI in a real headless Chromium against real processes: `tsflow standalone` on
 * examples/dags (scheduler, executor, triggerer, DAG processor and the API server serving the UI),
 * users made with `tsflow users create`. What is asserted is what a person sees: labels, text, the colours'
 * states in the squares' names.
 */

const PASSWORD = 'a long browser test password';
const DEMO = 'deferrable_demo';

/** Runs `script` in the page (a string, so the test needs no DOM types). */
const inPage = <T>(page: Page, script: string): Promise<T> => page.evaluate(script) as Promise<T>;

describe('web UI in a headless Chromium (issue 14)', function () {
  this.timeout(240_000);
  const executablePath = findChromium();
  let tdb: TestDatabase;
  let standalone: CliProcess | undefined;
  let browser: Browser | undefined;
  let base = '';

  before(async function () {
    if (!executablePath) {
      console.log(`      ${noChromiumMessage()}`);
      this.skip();
    }
    tdb = await createTestDatabase();
    const env = { TSFLOW_DATABASE_URL: tdb.url, TSFLOW_LOGS_FOLDER: mkdtempSync(path.join(os.tmpdir(), 'tsflow-ui-logs-')) };
    for (const [username, role] of [['op', 'operator'], ['watcher', 'viewer']] as const) {
      const made = await createUserWithCli(env, username, role, PASSWORD);
      expect(made.code, made.output).to.equal(0);
    }
    const port = await freePort();
    standalone = new CliProcess(['standalone', '--dags-folder', 'examples/dags', '--api-port', String(port)], env);
    await standalone.waitForOutput(/web UI at http:\/\/127\.0\.0\.1:\d+\/ui\//, 90_000);
    base = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs() });
  });

  after(async () => {
    await browser?.close();
    // SIGTERM: standalone drains and exits 0.
    const exit = await standalone?.stop();
    await tdb?.drop();
    if (!executablePath) return;
    expect(await chromiumChildren(), 'Chromium processes left running').to.deep.equal([]);
    expect(exit?.code, standalone?.stderr).to.equal(0);
  });

  async function signIn(username: string): Promise<Page> {
    const context = await (browser as Browser).newContext();
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Waits' }).waitFor();
    return page;
  }

  /** The grid square of `taskId` in the newest run, by the state its name says. */
  const square = (page: Page, taskId: string, state: string) => page.getByRole('link', { name: new RegExp(`^${taskId} in manual__.+: ${state}$`) });

  it('log in, trigger the demo with conf, see its wait (a viewer cannot operate it), fire it early, watch the grid turn green live, read a log', async () => {
    const page = await signIn('op');
    let loads = 0;
    page.on('load', () => loads++);
    await inPage(page, 'window.__tsflowMarker = "not reloaded"');

    // Pause and unpause the demo from the DAGs page.
    const demoRow = page.getByRole('row').filter({ hasText: DEMO });
    const paused = demoRow.getByRole('checkbox', { name: `paused ${DEMO}` });
    expect(await paused.isChecked()).to.equal(false);
    await paused.click();
    await demoRow.getByText('paused', { exact: true }).waitFor();
    await paused.click();
    await demoRow.getByText('active', { exact: true }).waitFor();

    // Trigger the demo with a long wait.
    await demoRow.getByRole('button', { name: 'Trigger' }).click();
    await page.getByLabel('Configuration (JSON)').fill('{"waitSeconds": 600}');
    await page.getByRole('button', { name: 'Trigger run' }).click();

    // The grid opens and follows the run live until the custom operator defers.
    await page.getByRole('table', { name: `grid of ${DEMO}` }).waitFor();
    await square(page, 'wait_then_report', 'deferred').waitFor({ timeout: 90_000 });
    expect(await square(page, 'plan_batch', 'success').count()).to.equal(1);

    // A viewer sees the wait on the Waits page but no button to operate it.
    const viewer = await signIn('watcher');
    await viewer.getByRole('link', { name: 'Waits' }).click();
    const viewersRow = viewer.getByRole('row').filter({ hasText: `${DEMO}.wait_then_report` });
    await viewersRow.waitFor();
    expect(await viewersRow.getByRole('button').count()).to.equal(0);
    await viewer.getByRole('link', { name: 'DAGs' }).click();
    await viewer.getByRole('row').filter({ hasText: DEMO }).waitFor();
    expect(await viewer.getByRole('button', { name: 'Trigger' }).count()).to.equal(0);
    await viewer.context().close();

    // The Cluster page shows the triggerer holding it.
    const waits = await page.context().newPage();
    await waits.goto(`${base}/ui/#/cluster`);
    await waits.getByRole('table', { name: 'Triggerers' }).getByRole('row').filter({ hasText: /healthy\s*1 \/ \d+/ }).waitFor();

    // The operator fires it from the Waits page, in a second tab, while the first shows the grid.
    await waits.goto(`${base}/ui/#/waits`);
    const row = waits.getByRole('row').filter({ hasText: `${DEMO}.wait_then_report` });
    await row.waitFor();
    // Its kind and what it waits for: a due time.
    expect(await row.textContent()).to.match(/time\s*due \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/);
    await row.getByRole('button', { name: 'Fire now' }).click();
    await waits.getByRole('status').filter({ hasText: /Fired trigger \d+/ }).waitFor();
    await row.waitFor({ state: 'detached', timeout: 30_000 });

    // The grid turns green without a reload: every square and the run's bar.
    await page.getByRole('img', { name: /^run manual__.+ success$/ }).waitFor({ timeout: 90_000 });
    for (const task of ['plan_batch', 'wait_for_window', 'wait_then_report']) expect(await square(page, task, 'success').count(), task).to.equal(1);
    expect(await inPage<string>(page, 'window.__tsflowMarker')).to.equal('not reloaded');
    expect(loads).to.equal(0);

    // A square opens the task instance with its log.
    await square(page, 'plan_batch', 'success').click();
    await page.getByRole('heading', { name: /plan_batch/ }).waitFor();
    const log = page.getByLabel('task log');
    await log.filter({ hasText: 'planned a batch' }).waitFor({ timeout: 30_000 });
    await page.getByText(/the try is over/).waitFor({ timeout: 30_000 });
    await page.context().close();
  });
});
