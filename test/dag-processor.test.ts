import { expect } from 'chai';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { silentLogger } from '../src/common/logger.ts';
import { processAlive } from '../src/common/process-alive.ts';
import { DagProcessor } from '../src/dag-processor/dag-processor.ts';
import type { DagProcessorOptions } from '../src/dag-processor/dag-processor-options.ts';
import type { SerializedDag } from '../src/dag-bag/serialized-dag.ts';
import { tsflow } from './support/cli.ts';
import { CliProcess, stopAllProcesses } from './support/cli-process.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { track } from './support/daemons.ts';
import { childPids } from './support/processes.ts';

/*
 * The DAG processor on real files, real parse processes and a real PostgreSQL: what lands in
 * serialized_dag, dag and import_error when DAG files are good, throw, hang, spin, exit, change,
 * get fixed or vanish; two processors on one folder; the CLI daemon's clean stop.
 */

function dagSource(dagId: string, schedule: string | null, extra = ''): string {
  return [
    "import { BaseOperator, dag } from 'tsflow';",
    'class Noop extends BaseOperator { override execute(): number { return 1; } }',
    extra,
    `export default dag({ dagId: '${dagId}', schedule: ${JSON.stringify(schedule)}, startDate: '2026-01-01T00:00:00Z' }, () => {`,
    "  new Noop({ taskId: 'noop' });",
    '});',
    '',
  ].join('\n');
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}


/** A logger that keeps its error lines, to check a run logged none. */
function errorCollector(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString());
      callback();
    },
  });
  return { logger: pino({ level: 'error' }, stream), lines };
}

describe('DAG processor', function () {
  this.timeout(30_000);
  let t: TestDatabase;
  let root: string;

  before(async () => {
    t = await createTestDatabase();
    root = await mkdtemp(path.join(os.tmpdir(), 'tsflow-dag-processor-'));
  });
  after(async () => {
    await t.drop();
    await rm(root, { recursive: true, force: true });
  });
  afterEach(() => stopAllProcesses());

  const db = () => t.database.db;
  const serialized = async (dagId: string): Promise<SerializedDag | undefined> =>
    (await db().selectFrom('serialized_dag').select('data').where('dag_id', '=', dagId).executeTakeFirst())?.data;
  const importErrors = async (folder: string): Promise<Map<string, string>> =>
    new Map((await db().selectFrom('import_error').select(['filename', 'stacktrace']).where('filename', 'like', `${folder}/%`).execute()).map((r) => [r.filename, r.stacktrace]));
  const newProcessor = (folder: string, options: DagProcessorOptions = {}, logger = silentLogger()): DagProcessor =>
    track(new DagProcessor({ database: t.database, folder, logger }, { parseTimeoutMs: 2000, scanIntervalMs: 60_000, debounceMs: 100, ...options }));

  describe('one folder with good and broken files', () => {
    let folder: string;
    let processor: DagProcessor;

    before(async function () {
      this.timeout(40_000);
      folder = path.join(root, 'mixed');
      await mkdir(path.join(folder, 'nested'), { recursive: true });
      await writeFile(path.join(folder, 'package.json'), JSON.stringify({ type: 'module' }));
      await writeFile(path.join(folder, 'good_a.ts'), dagSource('good_a', '@daily', "console.log('user output on stdout must not break the protocol');"));
      await writeFile(path.join(folder, 'nested', 'good_b.ts'), dagSource('good_b', '0 6 * * *'));
      await writeFile(path.join(folder, 'throws.ts'), "throw new Error('boom at import');\n");
      await writeFile(path.join(folder, 'hangs.ts'), 'await new Promise(() => {});\nexport {};\n');
      await writeFile(path.join(folder, 'loops.ts'), 'while (true) {}\nexport {};\n');
      await writeFile(path.join(folder, 'exits.ts'), 'process.exit(3);\nexport {};\n');
      await writeFile(path.join(folder, 'bad_schedule.ts'), dagSource('bad_schedule', 'every day'));
      processor = new DagProcessor({ database: t.database, folder, logger: silentLogger() }, { parseTimeoutMs: 2000, scanIntervalMs: 60_000, debounceMs: 100 });
      const firstPass = new Promise<void>((resolve) => processor.on('pass', ({ files }) => files > 0 && resolve()));
      await processor.start();
      await firstPass;
    });
    after(() => processor.stop());

    it('stores the good DAGs, serialized and active, and an import error naming each broken file', async () => {
      expect((await serialized('good_a'))?.timetableSummary).to.equal('@daily');
      expect((await serialized('good_b'))?.fileloc).to.equal(path.join(folder, 'nested', 'good_b.ts'));
      const dags = await db().selectFrom('dag').select(['dag_id', 'is_active']).where('dag_id', 'in', ['good_a', 'good_b']).orderBy('dag_id').execute();
      expect(dags).to.deep.equal([{ dag_id: 'good_a', is_active: true }, { dag_id: 'good_b', is_active: true }]);

      const errors = await importErrors(folder);
      expect([...errors.keys()].sort()).to.deep.equal(['bad_schedule.ts', 'exits.ts', 'hangs.ts', 'loops.ts', 'throws.ts'].map((f) => path.join(folder, f)));
      expect(errors.get(path.join(folder, 'throws.ts'))).to.match(/^Error: boom at import\n\s+at .*throws\.ts/);
      expect(errors.get(path.join(folder, 'hangs.ts'))).to.contain('took longer than 2 s to parse (--parse-timeout)');
      expect(errors.get(path.join(folder, 'loops.ts'))).to.contain('took longer than 2 s to parse (--parse-timeout)');
      expect(errors.get(path.join(folder, 'exits.ts'))).to.match(/exited with code 3 while importing this file/);
      expect(errors.get(path.join(folder, 'bad_schedule.ts'))).to.match(/^InvalidScheduleError: dag 'bad_schedule': schedule 'every day' is not a valid cron expression/);
      expect(await serialized('bad_schedule')).to.equal(undefined);
    });

    it('picks up an edited schedule without a restart (the watch), and clears a fixed file\'s import error', async () => {
      await writeFile(path.join(folder, 'good_a.ts'), dagSource('good_a', '0 3 * * *'));
      await writeFile(path.join(folder, 'throws.ts'), dagSource('was_broken', null));
      await waitUntil(async () => (await serialized('good_a'))?.timetableSummary === '0 3 * * *', 'new schedule in serialized_dag', 15_000);
      const timetable = (await serialized('good_a'))?.timetable;
      expect(timetable).to.deep.include({ kind: 'cron' });
      expect(JSON.stringify(timetable)).to.contain('0 3 * * *');
      await waitUntil(async () => (await serialized('was_broken')) !== undefined && !(await importErrors(folder)).has(path.join(folder, 'throws.ts')), 'the fixed file parsed', 15_000);
    });

    it('deactivates the DAGs of a deleted file and drops a deleted file\'s import error', async () => {
      await unlink(path.join(folder, 'nested', 'good_b.ts'));
      await unlink(path.join(folder, 'exits.ts'));
      await waitUntil(
        async () => (await db().selectFrom('dag').select('is_active').where('dag_id', '=', 'good_b').executeTakeFirstOrThrow()).is_active === false,
        'good_b deactivated',
        10_000,
      );
      await waitUntil(async () => !(await importErrors(folder)).has(path.join(folder, 'exits.ts')), 'the import error of exits.ts dropped', 10_000);
      expect((await db().selectFrom('dag').select('is_active').where('dag_id', '=', 'good_a').executeTakeFirstOrThrow()).is_active).to.equal(true);
    });

    it('tsflow dags list-import-errors --json lists them', async () => {
      const result = await tsflow(['dags', 'list-import-errors', '--json'], { TSFLOW_DATABASE_URL: t.url });
      expect(result.code, result.stderr).to.equal(0);
      const listed = JSON.parse(result.stdout) as { filename: string; error: string; timestamp: string }[];
      const mine = listed.filter((e) => e.filename.startsWith(`${folder}/`));
      expect(mine.map((e) => path.basename(e.filename)).sort()).to.deep.equal(['bad_schedule.ts', 'hangs.ts', 'loops.ts']);
      for (const e of mine) {
        expect(e.error).to.be.a('string').with.length.greaterThan(0);
        expect(Number.isNaN(Date.parse(e.timestamp))).to.equal(false);
      }
      const text = await tsflow(['dags', 'list-import-errors'], { TSFLOW_DATABASE_URL: t.url });
      expect(text.code).to.equal(0);
      expect(text.stdout).to.contain(path.join(folder, 'hangs.ts'));
    });
  });

  it('two processors on one folder write one row per DAG and log no error', async function () {
    this.timeout(40_000);
    const folder = path.join(root, 'shared');
    await mkdir(folder);
    await writeFile(path.join(folder, 'package.json'), JSON.stringify({ type: 'module' }));
    const ids = Array.from({ length: 30 }, (_, i) => `shared_${String(i).padStart(2, '0')}`);
    for (const id of ids) await writeFile(path.join(folder, `${id}.ts`), dagSource(id, '@hourly'));
    const logs = errorCollector();
    const processors = [newProcessor(folder, {}, logs.logger), newProcessor(folder, {}, logs.logger)];
    const passes = processors.map((p) => new Promise<void>((resolve) => p.on('pass', ({ files }) => files > 0 && resolve())));
    await Promise.all(processors.map((p) => p.start()));
    await Promise.all(passes);
    // Both change the same file at once, too.
    const changed = processors.map((p) => new Promise<void>((resolve) => p.on('file:recorded', ({ file }) => file.endsWith('shared_00.ts') && resolve())));
    await writeFile(path.join(folder, 'shared_00.ts'), dagSource('shared_00', '@weekly'));
    await Promise.all(changed);
    await Promise.all(processors.map((p) => p.stop()));

    const rows = await db().selectFrom('serialized_dag').select('dag_id').where('dag_id', 'like', 'shared\\_%').execute();
    expect(rows.map((r) => r.dag_id).sort()).to.deep.equal(ids);
    expect((await serialized('shared_00'))?.timetableSummary).to.equal('@weekly');
    expect(await importErrors(folder)).to.have.property('size', 0);
    expect(logs.lines).to.deep.equal([]);
  });

  it('tsflow dag-processor refuses a bad option or a missing folder, naming it', async function () {
    this.timeout(30_000);
    const timeout = await tsflow(['dag-processor', '--parse-timeout', '0'], { TSFLOW_DATABASE_URL: t.url });
    expect(timeout.code).to.equal(2);
    expect(timeout.stderr).to.contain("--parse-timeout must be a number of seconds > 0, got '0'");
    const missing = path.join(root, 'no-such-folder');
    const folderless = await tsflow(['dag-processor', '--dags-folder', missing], { TSFLOW_DATABASE_URL: t.url });
    expect(folderless.code).to.equal(1);
    expect(folderless.stderr).to.contain(`DAG folder ${missing} does not exist`);
  });

  it('tsflow dag-processor stops on SIGTERM with exit 0, its parse process killed', async function () {
    this.timeout(40_000);
    const folder = path.join(root, 'cli');
    await mkdir(folder);
    await writeFile(path.join(folder, 'package.json'), JSON.stringify({ type: 'module' }));
    await writeFile(path.join(folder, 'a_cli_dag.ts'), dagSource('cli_dag', '@daily'));
    await writeFile(path.join(folder, 'z_hangs.ts'), 'await new Promise(() => {});\nexport {};\n');
    const daemon = new CliProcess(['dag-processor', '--dags-folder', folder, '--parse-timeout', '60', '--scan-interval', '5'], { TSFLOW_DATABASE_URL: t.url });
    await daemon.waitFor(async () => (await serialized('cli_dag')) !== undefined, 'cli_dag parsed', 30_000, 200);
    const job = await db().selectFrom('job').select(['id', 'state']).where('job_type', '=', 'dag_processor').where('pid', '=', daemon.pid).executeTakeFirstOrThrow();
    expect(job.state).to.equal('running');
    const probe = await tsflow(['jobs', 'check', '--job-type', 'dag_processor'], { TSFLOW_DATABASE_URL: t.url });
    expect(probe.code, probe.stderr).to.equal(0);
    // The parse process is now stuck on z_hangs.ts.
    const children = await childPids(daemon.pid);
    expect(children).to.have.length.greaterThan(0);
    const exit = await daemon.stop();
    expect(exit, daemon.stderr).to.deep.equal({ code: 0, signal: null });
    for (const pid of children) expect(processAlive(pid), `parse process ${pid} still alive`).to.equal(false);
    expect((await db().selectFrom('job').select('state').where('id', '=', job.id).executeTakeFirstOrThrow()).state).to.equal('success');
  });
});
