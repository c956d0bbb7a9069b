import { expect } from 'chai';
import { DateTime } from 'luxon';
import { pino } from 'pino';
import { noDagRunAccess } from '../src/runner/dag-run-access.ts';
import { invoke } from '../src/runner/task-outcome.ts';
import { renderString, renderTemplateFields, TemplateRenderError, templateFieldsOf } from '../src/runner/render-templates.ts';
import { runContextFields } from '../src/runner/run-context.ts';
import { templateContext } from '../src/runner/template-context.ts';
import { TemplateDate } from '../src/runner/template-date.ts';
import { BaseOperator, BashOperator, dag, task, type TaskContext, type VariableOptions } from '../src/sdk/index.ts';
import { lookupConnection, lookupVariable } from '../src/secrets/lookup.ts';
import { maskText } from '../src/secrets/masker.ts';

/** A task's context as the runner builds it, with variables and connections from `env` (no database). */
function contextFor(env: Record<string, string> = {}, overrides: Partial<TaskContext> = {}): TaskContext {
  return {
    dagId: 'tpl',
    runId: 'manual__2026-03-01T06:30:00+00:00',
    taskId: 'say',
    mapIndex: -1,
    tryNumber: 2,
    maxTries: 3,
    ...runContextFields({
      conf: { y: 'from-conf', n: 3 },
      logicalDate: new Date('2026-03-01T06:30:00Z'),
      runType: 'manual',
      dataIntervalStart: new Date('2026-02-28T06:30:00Z'),
      dataIntervalEnd: new Date('2026-03-01T06:30:00Z'),
      prevSuccess: undefined,
    }),
    params: { x: 'param-x' },
    startDate: DateTime.utc(),
    log: pino({ level: 'silent' }),
    signal: new AbortController().signal,
    defaults: { deferrable: false },
    xcomPull: async () => undefined,
    xcomPush: async () => undefined,
    getConnection: (id: string) => lookupConnection(undefined, id, env),
    getVariable: <T = string>(key: string, options?: VariableOptions<T>) => lookupVariable<T>(undefined, key, options, env),
    dagRuns: noDagRunAccess(),
    ...overrides,
  };
}

describe('templated fields (Nunjucks, with Airflow context names)', () => {
  it("formats the run's dates as Airflow does: ds, ds_nodash, ts, ts_nodash, logical_date and the interval", () => {
    const names = templateContext(contextFor());
    const render = (t: string) => renderString(t, names);
    expect(render('{{ ds }} {{ ds_nodash }} {{ ts }} {{ ts_nodash }} {{ ts_nodash_with_tz }}')).to.equal(
      '2026-03-01 20260301 2026-03-01T06:30:00+00:00 20260301T063000 20260301T063000+0000',
    );
    expect(render('{{ logical_date }}|{{ data_interval_start }}|{{ data_interval_end }}')).to.equal(
      '2026-03-01T06:30:00+00:00|2026-02-28T06:30:00+00:00|2026-03-01T06:30:00+00:00',
    );
    expect(render("{{ logical_date.strftime('%Y/%m/%d %H:%M:%S %a %b %j %%') }} {{ logical_date.year }}")).to.equal('2026/03/01 06:30:00 Sun Mar 060 % 2026');
    expect(render('{{ dag_run.run_id }} {{ run_id }} {{ dag_run.conf.y }} {{ conf.n + 1 }} {{ params.x }}')).to.equal(
      'manual__2026-03-01T06:30:00+00:00 manual__2026-03-01T06:30:00+00:00 from-conf 4 param-x',
    );
    expect(render('{{ ti.task_id }} {{ ti.dag_id }} {{ ti.try_number }} {{ task.task_id }} {{ task_instance_key_str }}')).to.equal('say tpl 2 say tpl__say__20260301');
    // No autoescaping: a shell command keeps its quotes and ampersands.
    expect(render(`echo "a & b" '{{ params.x }}'`)).to.equal(`echo "a & b" 'param-x'`);
  });

  it('writes microseconds in ts and isoformat only when there are some, and refuses an unknown strftime directive', () => {
    const date = new TemplateDate(DateTime.fromISO('2026-01-02T03:04:05.250Z'));
    expect(date.toString()).to.equal('2026-01-02T03:04:05.250000+00:00');
    expect(date.strftime('%f %y %z %Z')).to.equal('250000 26 +0000 UTC');
    expect(() => date.strftime('%Q')).to.throw(/%Q is not supported/);
  });

  it("is strict about undefined names, as Airflow's StrictUndefined: the error names the field and the line", async () => {
    const d = dag({ dagId: 'strict' }, () => {
      new BashOperator({ taskId: 'say', bashCommand: 'echo one\necho {{ params.missing }}' });
    });
    const error = await renderTemplateFields(d.getTask('say'), contextFor()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(TemplateRenderError);
    expect((error as TemplateRenderError).message).to.match(/^template error in field 'bashCommand' \(line 2, column \d+\): attempted to output null or undefined value/);
    expect((error as TemplateRenderError).line).to.equal(2);
  });

  it('renders var.value, var.json, var.value.get and conn.ID attributes, fetching each once', async () => {
    const env = {
      TSFLOW_VAR_GREETING: 'hello',
      TSFLOW_VAR_SETTINGS: '{"depth": 3}',
      TSFLOW_CONN_WAREHOUSE: 'postgres://loader:s3cr3t-pass@db.example:5433/dw?sslmode=require',
    };
    let variableReads = 0;
    const base = contextFor(env);
    const context = contextFor(env, { getVariable: (key, options) => (variableReads++, base.getVariable(key, options)) });
    const d = dag({ dagId: 'lookups' }, () => {
      new BashOperator({
        taskId: 'say',
        bashCommand: "{{ var.value.greeting }} {{ var.value['greeting'] }} {{ var.json.settings.depth }} {{ var.value.get('absent', 'fallback') }}",
        env: { DSN: '{{ conn.warehouse.login }}@{{ conn.warehouse.host }}:{{ conn.warehouse.port }}/{{ conn.warehouse.schema }}', MODE: '{{ conn.warehouse.extra_dejson.sslmode }}', PW: '{{ conn.warehouse.password }}' },
      });
    });
    const rendered = await renderTemplateFields(d.getTask('say'), context);
    expect(rendered.get('bashCommand')).to.equal('hello hello 3 fallback');
    expect(rendered.get('env')).to.deep.equal({ DSN: 'loader@db.example:5433/dw', MODE: 'require', PW: 's3cr3t-pass' });
    // greeting, settings (as JSON) and absent: one read each, however many passes.
    expect(variableReads).to.equal(3);
    // The connection's password is registered with the masker as it is fetched.
    expect(maskText('pw=s3cr3t-pass')).to.equal('pw=***');
  });

  it('names an unknown variable or connection, with the line that reads it', async () => {
    const d = dag({ dagId: 'unknown_lookups' }, () => {
      new BashOperator({ taskId: 'v', bashCommand: 'echo\n  {{ var.value.nope }}' });
      new BashOperator({ taskId: 'c', bashCommand: 'echo {{ conn.missing_conn.host }}' });
    });
    const failure = (taskId: string) => renderTemplateFields(d.getTask(taskId), contextFor()).then(() => '', (e: Error) => e.message);
    expect(await failure('v')).to.match(/^template error in field 'bashCommand' \(line 2, column 16\): .*variable 'nope' is not defined/);
    expect(await failure('c')).to.match(/^template error in field 'bashCommand' \(line 1, column 14\): .*connection 'missing_conn' is not defined/);
  });

  it('renders strings inside arrays and plain objects, leaves other values and functions alone', async () => {
    class Custom extends BaseOperator {
      static override readonly templateFields = ['query', 'list', 'options', 'count', 'fn'];
      query = 'select * from t where day = {{ ds }}';
      list = ['{{ ds_nodash }}', 7, ['{{ params.x }}']];
      options = { '{{ ds }}': '{{ params.x }}', nested: { flag: true } };
      count = 3;
      fn = (): string => '{{ ds }}';
      seen: unknown[] = [];
      execute(): void {
        this.seen = [this.query, this.list, this.options, this.count, this.fn()];
      }
    }
    const d = dag({ dagId: 'custom' }, () => {
      new Custom({ taskId: 'custom' });
    });
    const op = d.getTask('custom') as Custom;
    expect(templateFieldsOf(op)).to.deep.equal(['query', 'list', 'options', 'count', 'fn']);
    const outcome = await invoke(op, contextFor(), { next_method: null, next_kwargs: null }, new AbortController().signal).outcome;
    expect(outcome.kind).to.equal('value');
    expect(op.seen).to.deep.equal([
      'select * from t where day = 2026-03-01',
      ['20260301', 7, ['param-x']],
      { '{{ ds }}': 'param-x', nested: { flag: true } },
      3,
      '{{ ds }}',
    ]);
    // After the run, the operator holds its templates again: a worker reuses it for the next run.
    expect(op.query).to.equal('select * from t where day = {{ ds }}');
  });

  it("renders a TaskFlow task's string arguments, but not the XCom values it receives", async () => {
    const seen: unknown[] = [];
    const d = dag({ dagId: 'tf_args' }, () => {
      const produce = task(function produce() {
        return '{{ ds }}';
      });
      const consume = task(function consume(_ctx: TaskContext, fromXcom: string, literal: string, nested: { when: string }) {
        seen.push(fromXcom, literal, nested);
      });
      consume(produce(), 'day {{ ds }}', { when: '{{ ts_nodash }}' });
    });
    const context = contextFor({}, { xcomPull: async <T>() => '{{ ds }}' as T });
    const outcome = await invoke(d.getTask('consume'), context, { next_method: null, next_kwargs: null }, new AbortController().signal).outcome;
    expect(outcome.kind).to.equal('value');
    expect(seen).to.deep.equal(['{{ ds }}', 'day 2026-03-01', { when: '20260301T063000' }]);
  });

  it("renders a task.sensor's string arguments before it pokes", async () => {
    const d = dag({ dagId: 'sensor_args' }, () => {
      const wait = task.sensor({ pokeInterval: 1 }, function wait(_ctx: TaskContext, day: string) {
        return { isDone: true, xcomValue: day };
      });
      wait('day {{ ds_nodash }}');
    });
    const outcome = await invoke(d.getTask('wait'), contextFor(), { next_method: null, next_kwargs: null }, new AbortController().signal).outcome;
    expect(outcome).to.deep.include({ kind: 'value', value: 'day 20260301' });
  });

  it('fails the try (retryable) with the template error, before the code runs', async () => {
    let ran = false;
    const d = dag({ dagId: 'bad_syntax' }, () => {
      const run = task(function run(_ctx: TaskContext, _arg: string) {
        ran = true;
      });
      run('{% if %}');
    });
    const outcome = await invoke(d.getTask('run'), contextFor(), { next_method: null, next_kwargs: null }, new AbortController().signal).outcome;
    expect(ran).to.equal(false);
    expect(outcome.kind).to.equal('failed');
    if (outcome.kind !== 'failed') return;
    expect(outcome.retryable).to.equal(true);
    expect((outcome.error as Error).message).to.match(/^template error in field 'opArgs' \(line 1, column \d+\): unexpected token/);
  });
});
