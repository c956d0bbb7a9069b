import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { chromium, type Browser, type Page } from 'playwright-core';
import { chromiumArgs, chromiumChildren, createUserWithCli, findChromium, noChromiumMessage } from './support/browser.ts';
import { tsflow } from './support/cli.ts';
import { CliProcess, freePort } from './support/cli-process.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';

/*
 * The Required actions page in a real headless Chromium against `tsflow standalone` (scheduler,
 * executor, triggerer, DAG processor, API server): a run's HITL task waits; the assignee answers it
 * on the page (a param filled in, an option clicked) and the run goes on with the answer. A user who
 * is not an assignee sees the request with its buttons disabled.
 */

const PASSWORD = 'a long browser test password';

const DAG_FILE = `import { dag, HITLOperator, task, type JsonObject, type TaskContext } from 'tsflow';

const report = task({ taskId: 'report' }, (_context: TaskContext, answer: JsonObject) => answer);

export default dag({ dagId: 'hitl_ui' }, () => {
  const ask = new HITLOperator({
    taskId: 'ask',
    subject: 'Deploy build {{ run_id }}?',
    body: 'Check the **staging** dashboard first.',
    options: ['Deploy', 'Hold'],
    params: { note: '', replicas: 2 },
    assignees: ['approver'],
  });
  report(ask.output);
  new HITLOperator({ taskId: 'ask_many', subject: 'Which regions?', options: ['eu', 'us', 'apac'], multiple: true });
});
`;

describe('Required actions page: answering a human-in-the-loop request in a headless Chromium', function () {
  this.timeout(240_000);
  const executablePath = findChromium();
  let tdb: TestDatabase;
  let standalone: CliProcess | undefined;
  let browser: Browser | undefined;
  let base = '';
  let env: Record<string, string> = {};

  before(async function () {
    if (!executablePath) {
      console.log(`      ${noChromiumMessage()}`);
      this.skip();
    }
    tdb = await createTestDatabase();
    const dags = mkdtempSync(path.join(os.tmpdir(), 'tsflow-hitl-dags-'));
    writeFileSync(path.join(dags, 'hitl-ui.ts'), DAG_FILE);
    env = { TSFLOW_DATABASE_URL: tdb.url, TSFLOW_DAGS_FOLDER: dags, TSFLOW_LOGS_FOLDER: mkdtempSync(path.join(os.tmpdir(), 'tsflow-hitl-logs-')) };
    for (const [username, role] of [['approver', 'viewer'], ['op', 'operator']] as const) {
      const made = await createUserWithCli(env, username, role, PASSWORD);
      expect(made.code, made.output).to.equal(0);
    }
    const port = await freePort();
    standalone = new CliProcess(['standalone', '--dags-folder', dags, '--api-port', String(port)], env);
    await standalone.waitForOutput(/web UI at http:\/\/127\.0\.0\.1:\d+\/ui\//, 90_000);
    base = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs() });
  });

  after(async () => {
    await browser?.close();
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
    await page.getByRole('link', { name: 'Required actions' }).waitFor();
    return page;
  }

  const taskState = async (runId: string, taskId: string) =>
    (await sql<{ state: string | null }>`SELECT state FROM task_instance WHERE dag_id = 'hitl_ui' AND run_id = ${runId} AND task_id = ${taskId}`.execute(tdb.database.db)).rows[0]?.state;

  it('the assignee answers on the page with a param; the run resumes with the answer; others cannot answer; several options are checked and sent', async () => {
    await eventually(async () => (await tsflow(['dags', 'list', '--json'], env)).stdout.includes('hitl_ui'), 'the DAG to be parsed', 90_000, 500);
    const runId = 'hitl_ui_run_1';
    const triggered = await tsflow(['dags', 'trigger', 'hitl_ui', '--run-id', runId], env);
    expect(triggered.code, triggered.stderr).to.equal(0);
    await eventually(async () => (await taskState(runId, 'ask')) === 'deferred' && (await taskState(runId, 'ask_many')) === 'deferred', 'the HITL tasks to defer', 90_000, 250);

    // An operator who is not an assignee sees the request, but its buttons are disabled.
    const other = await signIn('op');
    await other.getByRole('link', { name: 'Required actions' }).click();
    const othersCard = other.getByRole('form', { name: 'request hitl_ui.ask' });
    await othersCard.getByRole('heading', { name: `Deploy build ${runId}?` }).waitFor();
    expect(await othersCard.getByRole('button', { name: 'Deploy' }).isDisabled()).to.equal(true);
    // A request without assignees takes any operator; several options: checkboxes and Respond.
    const many = other.getByRole('form', { name: 'request hitl_ui.ask_many' });
    await many.getByLabel('eu').check();
    await many.getByLabel('apac').check();
    await many.getByRole('button', { name: 'Respond' }).click();
    await other.getByRole('status').filter({ hasText: 'Answered hitl_ui.ask_many: eu, apac.' }).waitFor();
    await many.waitFor({ state: 'detached' });
    await other.context().close();

    const page = await signIn('approver');
    await page.getByRole('link', { name: 'Required actions' }).click();
    const card = page.getByRole('form', { name: 'request hitl_ui.ask' });
    await card.getByRole('heading', { name: `Deploy build ${runId}?` }).waitFor();
    expect(await card.textContent()).to.contain('Check the **staging** dashboard first.').and.contain('for approver');
    await card.getByLabel('note').fill('looks good');
    await card.getByLabel('replicas').fill('3');
    await card.getByRole('button', { name: 'Deploy' }).click();
    await page.getByRole('status').filter({ hasText: 'Answered hitl_ui.ask: Deploy.' }).waitFor();
    await page.getByText('No task is waiting for an answer.').waitFor();

    await eventually(async () => (await taskState(runId, 'report')) === 'success', 'the downstream task to run with the answer', 90_000, 250);
    const { rows } = await sql<{ value: Record<string, unknown> }>`
      SELECT value FROM xcom WHERE dag_id = 'hitl_ui' AND run_id = ${runId} AND task_id = 'report' AND key = 'return_value'`.execute(tdb.database.db);
    await eventually(async () => (await taskState(runId, 'ask_many')) === 'success', 'the multiple-choice task to resume', 90_000, 250);
    const manyXcom = await sql<{ value: Record<string, unknown> }>`
      SELECT value FROM xcom WHERE dag_id = 'hitl_ui' AND run_id = ${runId} AND task_id = 'ask_many' AND key = 'return_value'`.execute(tdb.database.db);
    expect(manyXcom.rows[0]?.value).to.deep.include({ chosenOptions: ['eu', 'apac'], respondedBy: 'op' });
    expect(rows[0]?.value).to.deep.include({ chosenOptions: ['Deploy'], paramsInput: { note: 'looks good', replicas: 3 }, respondedBy: 'approver', timedOut: false });
    await page.context().close();
  });
});
