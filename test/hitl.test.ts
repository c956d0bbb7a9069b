import { expect } from 'chai';
import { sql } from 'kysely';
import type { TaskInstanceKey } from '../src/db/schema.ts';
import { ApprovalOperator, BashOperator, dag, HITLOperator, type Dag } from '../src/sdk/index.ts';
import { call, startApi, type ApiRig } from './support/api.ts';
import { HITL_ROUTES } from './support/hitl-routes.ts';
import { errorLines, tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { stopAll } from './support/daemons.ts';
import { eventually } from './support/events.ts';
import { runThroughScheduler } from './support/dag-runner.ts';
import { createRun, queue, runTask, startTriggerer, taskInstance } from './support/rig.ts';

interface HitlJson {
  dag_id: string;
  task_id: string;
  pending: boolean;
  response_received: boolean;
  chosen_options: string[] | null;
  params_input: Record<string, unknown> | null;
  responded_by: string | null;
}

describe('human in the loop: HITLOperator, ApprovalOperator, tsflow hitl and /api/v1/hitlDetails', function () {
  this.timeout(120_000);
  let t: TestDatabase;
  let env: Record<string, string>;
  let api: ApiRig;
  let runNo = 0;

  before(async () => {
    t = await createTestDatabase();
    env = { TSFLOW_DATABASE_URL: t.url };
    api = await startApi(t.database);
  });
  after(async () => {
    await api?.stop();
    await t?.drop();
  });
  afterEach(() => stopAll());

  /** Creates a run of `d` and runs `taskId` once in this process (a HITL task stores its request and defers). */
  async function start(d: Dag, taskId: string): Promise<TaskInstanceKey> {
    const runId = await createRun(t.database, d, `r${++runNo}`);
    const key = { dagId: d.dagId, runId, taskId };
    await queue(t.database, key);
    await runTask(t.database, d, key);
    return key;
  }

  /** Runs a fired task instance again (the scheduler's job), so it resumes in executeComplete. */
  async function resume(d: Dag, key: TaskInstanceKey): Promise<void> {
    await eventually(async () => (await state(key)) === 'scheduled', `${key.taskId} to be resumed by the triggerer`, 30_000);
    await queue(t.database, key);
    await runTask(t.database, d, key);
  }

  const state = async (key: TaskInstanceKey) => (await taskInstance(t.database, key)).state;
  const xcom = async (key: TaskInstanceKey) =>
    (await t.database.db.selectFrom('xcom').select('value').where('run_id', '=', key.runId).where('task_id', '=', key.taskId).where('dag_id', '=', key.dagId).where('key', '=', 'return_value').executeTakeFirst())?.value;
  const stored = async (key: TaskInstanceKey) =>
    (await sql<{ chosen_options: string[] | null; responded_by: string | null; timed_out: boolean }>`
      SELECT chosen_options, responded_by, timed_out FROM hitl_detail WHERE dag_id = ${key.dagId} AND run_id = ${key.runId} AND task_id = ${key.taskId}`.execute(t.database.db)).rows[0];

  it('the CLI: an assignee answers and the task resumes with the answer; a non-assignee and a second answer change nothing', async () => {
    const d = dag({ dagId: 'hitl_cli', params: { product: 'widgets' } }, () => {
      new HITLOperator({
        taskId: 'choose',
        subject: 'Which region for {{ params.product }}?',
        options: ['eu', 'us', 'apac'],
        multiple: true,
        params: { reason: '', budget: 100 },
        assignees: ['alice'],
      });
    });
    const key = await start(d, 'choose');
    expect(await state(key)).to.equal('deferred');
    const triggerer = await startTriggerer(t.database, { pollIntervalMs: 60_000, eventPollIntervalMs: 600_000 });
    await eventually(async () => triggerer.eventWaits === 1, 'the HITL wait to be watched', 30_000);

    const listed = await tsflow(['hitl', 'list', '--pending', '--json'], env);
    expect(listed.code, listed.stderr).to.equal(0);
    const requests = (JSON.parse(listed.stdout) as { requests: { taskId: string; subject: string; pending: boolean }[] }).requests;
    expect(requests.find((r) => r.taskId === 'choose')).to.deep.include({ subject: 'Which region for widgets?', pending: true });

    const respond = (...extra: string[]) => tsflow(['hitl', 'respond', 'hitl_cli', key.runId, 'choose', ...extra], env);
    const bob = await respond('--option', 'eu', '--as', 'bob');
    expect(bob.code, bob.stderr).to.equal(4);
    expect(errorLines(bob).join('\n')).to.match(/user 'bob' may not answer .*only an assignee \(alice\) or an admin may; nothing changed/);
    const badOption = await respond('--option', 'mars', '--as', 'alice');
    expect(badOption.code).to.equal(2);
    expect(errorLines(badOption).join('\n')).to.match(/option "mars" is not one of "eu", "us", "apac"/);
    const badParam = await respond('--option', 'eu', '--param', 'colour=1', '--as', 'alice');
    expect(badParam.code).to.equal(2);
    expect(errorLines(badParam).join('\n')).to.match(/param 'colour' is not asked for: the params are budget, reason/);
    expect((await stored(key))?.chosen_options).to.equal(null);
    expect(await state(key)).to.equal('deferred');

    const alice = await respond('--option', 'eu', '--option', 'us', '--param', 'reason=cheapest', '--param', 'budget=250', '--as', 'alice');
    expect(alice.code, alice.stderr).to.equal(0);
    expect(alice.stdout).to.contain('answered hitl_cli/').and.contain('as alice: eu, us');
    await resume(d, key);
    // Polls far apart (60 s, 600 s): only the answer's NOTIFY can have woken the trigger in time.
    const { rows } = await sql<{ ms: number }>`
      SELECT (extract(epoch FROM ti.scheduled_at - e.created_at) * 1000)::float8 AS ms FROM task_instance ti, event e
      WHERE e.key = ${`hitl:hitl_cli/${key.runId}/choose`} AND ti.dag_id = 'hitl_cli' AND ti.run_id = ${key.runId} AND ti.task_id = 'choose'`.execute(t.database.db);
    expect(rows).to.have.length(1);
    console.log(`      answer → resume scheduled: ${Number(rows[0]?.ms).toFixed(1)} ms`);
    expect(await state(key)).to.equal('success');
    const answer = (await xcom(key)) as Record<string, unknown>;
    expect(answer).to.deep.include({ chosenOptions: ['eu', 'us'], paramsInput: { reason: 'cheapest', budget: 250 }, respondedBy: 'alice', timedOut: false });
    expect(answer['respondedAt']).to.be.a('string');

    const again = await respond('--option', 'apac');
    expect(again.code).to.equal(3);
    expect(errorLines(again).join('\n')).to.match(/was answered already, by 'alice' at .* \(eu, us\); nothing changed/);
    expect((await stored(key))?.chosen_options).to.deep.equal(['eu', 'us']);
    const none = await tsflow(['hitl', 'list', '--pending', '--dag', 'hitl_cli'], env);
    expect(none.stdout.trim()).to.equal('no pending requests');
  });

  it('the API: an assignee answers (PATCH, audited), others get 403 and a second answer 409; GET lists the pending ones', async () => {
    const d = dag({ dagId: 'hitl_api' }, () => {
      new HITLOperator({ taskId: 'review', subject: 'Ship it?', body: '**Release** 1.2', options: ['yes', 'no'], params: { note: '' }, assignees: ['viewer'] });
    });
    const key = await start(d, 'review');
    await startTriggerer(t.database, { pollIntervalMs: 60_000, eventPollIntervalMs: 600_000 });
    const pending = await call<{ hitl_details: HitlJson[]; total_entries: number }>(api.url, 'GET', '/api/v1/hitlDetails?pending=true&dag_id=hitl_api', { token: api.tokens.viewer });
    expect(pending.status).to.equal(200);
    expect(pending.body.total_entries).to.equal(1);
    expect(pending.body.hitl_details[0]).to.deep.include({ task_id: 'review', pending: true, response_received: false });

    const path = `/api/v1/hitlDetails/hitl_api/${encodeURIComponent(key.runId)}/review`;
    for (const [method, template] of HITL_ROUTES) {
      const route = template.replace('{dag_id}/{dag_run_id}/{task_id}', `hitl_api/${encodeURIComponent(key.runId)}/review`);
      expect((await call(api.url, method, route, { body: method === 'PATCH' ? { chosen_options: ['yes'] } : undefined })).status, `anonymous ${method}`).to.equal(401);
    }
    const forbidden = await call<{ detail: string }>(api.url, 'PATCH', path, { token: api.tokens.operator, body: { chosen_options: ['yes'] } });
    expect(forbidden.status).to.equal(403);
    expect(forbidden.body.detail).to.match(/user 'operator' may not answer/);
    expect((await call(api.url, 'PATCH', path, { token: api.tokens.viewer, body: { chosen_options: ['yes', 'no'] } })).status, 'two options, not multiple').to.equal(400);
    expect((await stored(key))?.chosen_options).to.equal(null);

    const answered = await call<HitlJson>(api.url, 'PATCH', path, { token: api.tokens.viewer, body: { chosen_options: ['no'], params_input: { note: 'not yet' } } });
    expect(answered.status, JSON.stringify(answered.body)).to.equal(200);
    expect(answered.body).to.deep.include({ response_received: true, chosen_options: ['no'], params_input: { note: 'not yet' }, responded_by: 'viewer' });
    const audit = await t.database.db.selectFrom('audit_log').selectAll().where('action', '=', 'hitl.respond').executeTakeFirst();
    expect(audit?.username).to.equal('viewer');
    expect(audit?.details).to.deep.include({ taskId: 'review', chosenOptions: ['no'] });

    const twice = await call(api.url, 'PATCH', path, { token: api.tokens.admin, body: { chosen_options: ['yes'] } });
    expect(twice.status).to.equal(409);
    await resume(d, key);
    expect(await state(key)).to.equal('success');
    expect(await xcom(key)).to.deep.include({ chosenOptions: ['no'], respondedBy: 'viewer' });
    const after = await call<{ total_entries: number }>(api.url, 'GET', '/api/v1/hitlDetails?pending=true&dag_id=hitl_api', { token: api.tokens.viewer });
    expect(after.body.total_entries).to.equal(0);
    expect((await call(api.url, 'PATCH', '/api/v1/hitlDetails/hitl_api/nope/review', { token: api.tokens.admin, body: { chosen_options: ['yes'] } })).status).to.equal(404);
  });

  it('a timeout with defaults takes them (respondedBy null, timedOut); without defaults the task fails, and answering after that is refused', async () => {
    const d = dag({ dagId: 'hitl_timeout' }, () => {
      new HITLOperator({ taskId: 'with_defaults', subject: 'Proceed?', options: ['go', 'stop'], defaults: 'stop', timeout: 1 });
      new HITLOperator({ taskId: 'without', subject: 'Proceed too?', options: ['go', 'stop'], timeout: 1 });
    });
    const withDefaults = await start(d, 'with_defaults');
    const without = { ...withDefaults, taskId: 'without' };
    await queue(t.database, without);
    await runTask(t.database, d, without);
    await startTriggerer(t.database, { pollIntervalMs: 500 });
    await resume(d, withDefaults);
    expect(await state(withDefaults)).to.equal('success');
    expect(await xcom(withDefaults)).to.deep.include({ chosenOptions: ['stop'], respondedBy: null, timedOut: true });
    expect(await stored(withDefaults)).to.deep.include({ chosen_options: ['stop'], timed_out: true });

    await resume(d, without);
    const failed = await taskInstance(t.database, without);
    expect(failed.state).to.equal('failed');
    expect(failed.error).to.match(/nobody answered 'Proceed too\?' within 1 sec.* and it has no defaults/);
    const late = await tsflow(['hitl', 'respond', 'hitl_timeout', without.runId, 'without', '--option', 'go'], env);
    expect(late.code).to.equal(1);
    expect(errorLines(late).join('\n')).to.match(/is no longer awaited: the task instance is failed; nothing changed/);
  });

  it('ApprovalOperator: Approve runs downstream; Reject succeeds with the answer and skips it', async () => {
    const d = dag({ dagId: 'hitl_approval' }, () => {
      const approve = new ApprovalOperator({ taskId: 'approve', subject: 'Publish?' });
      approve.setDownstream(new BashOperator({ taskId: 'publish', bashCommand: 'true' }));
    });
    await startTriggerer(t.database, { pollIntervalMs: 60_000, eventPollIntervalMs: 600_000 });
    const rejected = await start(d, 'approve');
    const approved = await start(d, 'approve');
    const respond = (key: TaskInstanceKey, option: string) => tsflow(['hitl', 'respond', 'hitl_approval', key.runId, 'approve', '--option', option], env);
    expect((await respond(rejected, 'Reject')).code).to.equal(0);
    expect((await respond(approved, 'Approve')).code).to.equal(0);
    await resume(d, rejected);
    await resume(d, approved);
    expect(await state(rejected)).to.equal('success');
    expect(await xcom(rejected)).to.deep.include({ chosenOptions: ['Reject'] });
    expect(await state({ ...rejected, taskId: 'publish' })).to.equal('skipped');
    expect(await state(approved)).to.equal('success');
    expect(await state({ ...approved, taskId: 'publish' })).to.not.equal('skipped');
  });

  it('a mapped HITL task asks once per map index; each is answered on its own with --map-index, through the scheduler', async () => {
    const d = dag({ dagId: 'hitl_mapped' }, () => {
      HITLOperator.partial({ taskId: 'ask', options: ['a', 'b'] }).expand({ subject: ['first?', 'second?'] });
    });
    const answers: Promise<unknown>[] = [];
    const outcome = await runThroughScheduler(t, d, {
      timeoutMs: 90_000,
      onSeen: (seen, key) => {
        if (seen.task !== 'ask' || seen.state !== 'deferred' || key.mapIndex === undefined) return;
        const option = key.mapIndex === 0 ? 'a' : 'b';
        answers.push(tsflow(['hitl', 'respond', 'hitl_mapped', key.runId, 'ask', '--map-index', String(key.mapIndex), '--option', option], env).then((r) => {
          if (r.code !== 0) throw new Error(r.stderr);
        }));
      },
    });
    await Promise.all(answers);
    expect(outcome.state).to.equal('success');
    expect(answers).to.have.length(2);
    const listed = await tsflow(['hitl', 'list', '--dag', 'hitl_mapped', '--json'], env);
    const requests = (JSON.parse(listed.stdout) as { requests: { mapIndex: number; subject: string; response: { chosenOptions: string[] } | null }[] }).requests;
    expect(requests.map((r) => [r.mapIndex, r.subject, r.response?.chosenOptions]).sort()).to.deep.equal([[0, 'first?', ['a']], [1, 'second?', ['b']]]);
  });

  it('options, defaults and params are checked when the DAG is defined', () => {
    expect(() => dag({ dagId: 'hitl_bad_1' }, () => new HITLOperator({ taskId: 'x', subject: 's', options: [] }))).to.throw(/options must be a non-empty list/);
    expect(() => dag({ dagId: 'hitl_bad_2' }, () => new HITLOperator({ taskId: 'x', subject: 's', options: ['a', 'b'], defaults: 'c' }))).to.throw(/defaults: option "c" is not one of "a", "b"/);
    expect(() => dag({ dagId: 'hitl_bad_3' }, () => new HITLOperator({ taskId: 'x', subject: 's', options: ['a', 'b'], defaults: ['a', 'b'] }))).to.throw(/defaults: this request takes one option/);
  });
});
