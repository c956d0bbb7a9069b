import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { silentLogger } from '../src/common/logger.ts';
import type { DagBag } from '../src/dag-bag/dag-bag.ts';
import { listAudit } from '../src/db/audit-log.ts';
import { createDagRun, upsertDags } from '../src/db/dag-runs.ts';
import { SequentialExecutor } from '../src/executors/sequential-executor.ts';
import { runTaskInstance } from '../src/runner/task-runner.ts';
import { call, recordApiDags, startApi, type ApiRig } from './support/api.ts';
import { stopAll } from './support/daemons.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { eventually } from './support/events.ts';
import { startScheduler } from './support/rig.ts';

interface Run {
  dag_run_id: string;
  state: string;
  logical_date: string;
  conf: Record<string, unknown>;
}
interface Ti {
  task_id: string;
  state: string | null;
  try_number: number;
}
interface LogLine {
  text: string;
  record: { msg?: string };
}

describe('API server: lists are paged, filtered and ordered', function () {
  this.timeout(60_000);
  let tdb: TestDatabase;
  let api: ApiRig;

  before(async () => {
    tdb = await createTestDatabase();
    await upsertDags(tdb.database.db, [{ dagId: 'paged_dag', fileloc: '/nowhere/paged.ts' }]);
    for (let i = 1; i <= 7; i++) {
      await createDagRun(tdb.database.db, { dagId: 'paged_dag', runId: `run_${i}`, conf: {}, logicalDate: new Date(Date.UTC(2026, 0, i)) });
    }
    await tdb.database.db.updateTable('dag_run').set({ state: 'success' }).where('run_id', 'in', ['run_2', 'run_5']).execute();
    api = await startApi(tdb.database);
  });

  after(async () => {
    await api?.stop();
    await tdb?.drop();
  });

  it('pages with limit and offset, newest logical date first, with the total', async () => {
    const pages: string[][] = [];
    for (const offset of [0, 3, 6]) {
      const page = await call<{ dag_runs: Run[]; total_entries: number }>(api.url, 'GET', `/api/v1/dags/paged_dag/dagRuns?limit=3&offset=${offset}`, { token: api.tokens.viewer });
      expect(page.status).to.equal(200);
      expect(page.body.total_entries).to.equal(7);
      pages.push(page.body.dag_runs.map((r) => r.dag_run_id));
    }
    expect(pages).to.deep.equal([['run_7', 'run_6', 'run_5'], ['run_4', 'run_3', 'run_2'], ['run_1']]);
  });

  it('orders by another column and filters by state; ~ lists every DAG\'s runs', async () => {
    const ordered = await call<{ dag_runs: Run[] }>(api.url, 'GET', '/api/v1/dags/paged_dag/dagRuns?order_by=logical_date&limit=2', { token: api.tokens.viewer });
    expect(ordered.body.dag_runs.map((r) => r.dag_run_id)).to.deep.equal(['run_1', 'run_2']);
    const succeeded = await call<{ dag_runs: Run[]; total_entries: number }>(api.url, 'GET', '/api/v1/dags/~/dagRuns?state=success', { token: api.tokens.viewer });
    expect(succeeded.body.dag_runs.map((r) => r.dag_run_id)).to.deep.equal(['run_5', 'run_2']);
    expect(succeeded.body.total_entries).to.equal(2);
    const twoStates = await call<{ total_entries: number }>(api.url, 'GET', '/api/v1/dags/~/dagRuns?state=success&state=queued', { token: api.tokens.viewer });
    expect(twoStates.body.total_entries).to.equal(7);
    const bad = await call(api.url, 'GET', '/api/v1/dags/~/dagRuns?order_by=conf', { token: api.tokens.viewer });
    expect(bad.status).to.equal(400);
    expect(bad.body['detail']).to.match(/order_by/);
    expect((await call(api.url, 'GET', '/api/v1/dags/no_such_dag/dagRuns', { token: api.tokens.viewer })).status).to.equal(404);
  });
});

describe('API server: runs triggered through the API, logs, marks, clears, live events', function () {
  this.timeout(120_000);
  let tdb: TestDatabase;
  let api: ApiRig;
  let bag: DagBag;
  let logsFolder: string;

  before(async () => {
    tdb = await createTestDatabase();
    bag = await recordApiDags(tdb);
    logsFolder = mkdtempSync(path.join(os.tmpdir(), 'tsflow-api-logs-'));
    api = await startApi(tdb.database, { logPollMs: 100 }, logsFolder);
  });

  beforeEach(async () => {
    // The scheduler runs tasks in this process, writing their logs where the API reads them.
    const executor = new SequentialExecutor({
      logger: silentLogger(),
      runTask: (key, signal, onState) =>
        runTaskInstance(
          { db: tdb.database.db, logger: silentLogger(), hostname: 'test', pid: process.pid, defaults: { deferrable: false }, onState, logsFolder },
          bag.getDag(key.dagId),
          key,
          { signal },
        ),
    });
    await startScheduler(tdb.database, bag, {}, executor);
  });

  afterEach(() => stopAll());

  after(async () => {
    await api?.stop();
    await tdb?.drop();
  });

  const runState = async (dagId: string, runId: string): Promise<string> =>
    (await call<Run>(api.url, 'GET', `/api/v1/dags/${dagId}/dagRuns/${encodeURIComponent(runId)}`, { token: api.tokens.viewer })).body.state;

  it('triggers a run with conf that the scheduler runs; its task instances and XComs are readable', async () => {
    const triggered = await call<Run>(api.url, 'POST', '/api/v1/dags/api_dag/dagRuns', {
      token: api.tokens.operator,
      body: { dag_run_id: 'via_api', conf: { count: 2 }, logical_date: '2026-03-01T12:00:00+02:00' },
    });
    expect(triggered.status).to.equal(200);
    expect(triggered.body).to.include({ dag_run_id: 'via_api', state: 'queued', logical_date: '2026-03-01T10:00:00.000Z' });
    expect(triggered.body.conf).to.deep.equal({ count: 2 });
    await eventually(async () => (await runState('api_dag', 'via_api')) === 'success', 'the run to succeed', 60_000, 100);

    const tis = await call<{ task_instances: Ti[]; total_entries: number }>(api.url, 'GET', '/api/v1/dags/api_dag/dagRuns/via_api/taskInstances', { token: api.tokens.viewer });
    expect(tis.body.task_instances.map((t) => [t.task_id, t.state, t.try_number])).to.deep.equal([
      ['first', 'success', 1],
      ['second', 'success', 1],
      ['third', 'success', 1],
    ]);
    const xcom = await call<{ value: unknown }>(api.url, 'GET', '/api/v1/dags/api_dag/dagRuns/via_api/taskInstances/second/xcomEntries/return_value', { token: api.tokens.viewer });
    expect(xcom.body.value).to.equal('second ran');
    const { entries } = await listAudit(tdb.database.db, { limit: 5, offset: 0, action: 'dag_run.trigger' });
    expect(entries[0]).to.include({ username: 'operator', target: 'dag_id=api_dag' });
    expect(entries[0]?.details).to.deep.include({ dag_run_id: 'via_api', conf_keys: ['count'] });
  });

  it('refuses a conf that breaks the DAG\'s params (400 naming it), a taken run id (409) and an unknown DAG (404)', async () => {
    const bad = await call(api.url, 'POST', '/api/v1/dags/api_dag/dagRuns', { token: api.tokens.operator, body: { conf: { count: 0 } } });
    expect(bad.status).to.equal(400);
    expect(bad.body['detail']).to.match(/conf.*count/);
    const taken = await call(api.url, 'POST', '/api/v1/dags/api_dag/dagRuns', { token: api.tokens.operator, body: { dag_run_id: 'via_api' } });
    expect(taken.status).to.equal(409);
    const unknown = await call(api.url, 'POST', '/api/v1/dags/no_such_dag/dagRuns', { token: api.tokens.operator, body: {} });
    expect(unknown.status).to.equal(404);
  });

  it('marks a task instance failed (the scheduler fails the run) and clears it (the run succeeds again)', async () => {
    const marked = await call<Ti>(api.url, 'PATCH', '/api/v1/dags/api_dag/dagRuns/via_api/taskInstances/third', { token: api.tokens.operator, body: { new_state: 'failed' } });
    expect(marked.status).to.equal(200);
    expect(marked.body.state).to.equal('failed');
    await eventually(async () => (await runState('api_dag', 'via_api')) === 'failed', 'the run to fail', 30_000, 100);

    const cleared = await call<{ task_instances: { task_id: string; previous_state: string }[] }>(api.url, 'POST', '/api/v1/dags/api_dag/clearTaskInstances', {
      token: api.tokens.operator,
      body: { dag_run_id: 'via_api', task_ids: ['third'] },
    });
    expect(cleared.status).to.equal(200);
    expect(cleared.body.task_instances).to.deep.equal([{ task_id: 'third', previous_state: 'failed' }]);
    await eventually(async () => (await runState('api_dag', 'via_api')) === 'success', 'the run to succeed again', 60_000, 100);
    const third = await call<Ti>(api.url, 'GET', '/api/v1/dags/api_dag/dagRuns/via_api/taskInstances/third', { token: api.tokens.viewer });
    expect(third.body).to.include({ state: 'success', try_number: 2 });

    const unknownTask = await call(api.url, 'POST', '/api/v1/dags/api_dag/clearTaskInstances', { token: api.tokens.operator, body: { dag_run_id: 'via_api', task_ids: ['nope'] } });
    expect(unknownTask.status).to.equal(400);
    expect(unknownTask.body['detail']).to.match(/task_ids.*'nope'/);
    const actions = (await listAudit(tdb.database.db, { limit: 20, offset: 0 })).entries.map((e) => e.action);
    expect(actions).to.include.members(['task_instance.mark', 'task_instance.clear']);
  });

  it('streams a try\'s log while it runs, and ends the stream when the try is over', async () => {
    const triggered = await call<Run>(api.url, 'POST', '/api/v1/dags/chatty_dag/dagRuns', { token: api.tokens.operator, body: { dag_run_id: 'chatty', conf: { lines: 15 } } });
    expect(triggered.status).to.equal(200);
    const tiPath = '/api/v1/dags/chatty_dag/dagRuns/chatty/taskInstances/chatty';
    await eventually(async () => (await call<Ti>(api.url, 'GET', tiPath, { token: api.tokens.viewer })).body.state === 'running', 'the try to start', 60_000, 20);

    const response = await fetch(`${api.url}${tiPath}/logs/1?follow=true`, { headers: { authorization: `Bearer ${api.tokens.viewer}` } });
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.match(/application\/x-ndjson/);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    let stateAtFirstLine: string | null | undefined;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (stateAtFirstLine === undefined && text.includes('\n')) stateAtFirstLine = (await call<Ti>(api.url, 'GET', tiPath, { token: api.tokens.viewer })).body.state;
    }
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as LogLine);
    const numbered = lines.map((l) => l.record.msg).filter((m) => m?.startsWith('line '));
    expect(numbered).to.deep.equal(Array.from({ length: 15 }, (_, i) => `line ${i + 1}`));
    expect(stateAtFirstLine, 'lines arrived while the try ran').to.equal('running');

    const whole = await call<{ content: LogLine[]; next_offset: number; running: boolean }>(api.url, 'GET', `${tiPath}/logs/1`, { token: api.tokens.viewer });
    expect(whole.body.running).to.equal(false);
    expect(whole.body.content.map((l) => l.record.msg).filter((m) => m?.startsWith('line '))).to.have.length(15);
    const rest = await call<{ content: LogLine[] }>(api.url, 'GET', `${tiPath}/logs/1?offset=${whole.body.next_offset}`, { token: api.tokens.viewer });
    expect(rest.body.content).to.deep.equal([]);
    expect((await call(api.url, 'GET', `${tiPath}/logs/2`, { token: api.tokens.viewer })).status).to.equal(404);
  });

  it('relays the daemons\' NOTIFYs as server-sent events', async () => {
    const controller = new AbortController();
    const response = await fetch(`${api.url}/api/v1/stream`, { headers: { authorization: `Bearer ${api.tokens.viewer}` }, signal: controller.signal });
    expect(response.headers.get('content-type')).to.match(/text\/event-stream/);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    const first = await reader.read();
    text += decoder.decode(first.value);
    expect(text).to.match(/: connected/);
    await call(api.url, 'PATCH', '/api/v1/dags/api_dag', { token: api.tokens.operator, body: { is_paused: true } });
    const seen = async (pattern: RegExp): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!pattern.test(text)) {
        if (Date.now() > deadline) throw new Error(`no event matching ${pattern}; got ${text}`);
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended; got ${text}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    await seen(/event: dag\ndata: \{"channel":"tsflow_dag","payload":"paused"\}/);
    await call(api.url, 'POST', '/api/v1/dags/api_dag/dagRuns', { token: api.tokens.operator, body: { dag_run_id: 'for_events' } });
    await seen(/event: ti\ndata: \{"channel":"tsflow_ti","payload":"run"\}/);
    controller.abort();
    await eventually(async () => api.live.listenerCount === 0, 'the stream to unsubscribe when the client left', 5000);
  });
});
