import { expect } from 'chai';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tsflow } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/*
 * `import … from 'tsflow'` from DAG files outside the repository: every extension, in folders with
 * no package.json, with "type": "module", with "type": "commonjs", and with one that names no type.
 */
const FOLDERS = {
  bare: undefined,
  esm: { type: 'module' },
  cjs: { type: 'commonjs' },
  untyped: { name: 'my-dags' },
} as const;
const EXTENSIONS = ['ts', 'mts', 'js', 'mjs'] as const;

/** Each DAG imports both entry points; the file's base name is unique (tsx maps x.js to a sibling x.ts). */
function dagSource(dagId: string, ext: (typeof EXTENSIONS)[number]): string {
  const typed = ext === 'ts' || ext === 'mts';
  return [
    "import { BaseOperator, dag } from 'tsflow';",
    "import { DateTimeTrigger } from 'tsflow/triggers';",
    'class Report extends BaseOperator {',
    `  ${typed ? 'override ' : ''}execute()${typed ? ': string' : ''} { return DateTimeTrigger.classpath; }`,
    '}',
    `export default dag({ dagId: '${dagId}' }, () => { new Report({ taskId: 'report' }); });`,
    '',
  ].join('\n');
}

describe('DAG files in any folder', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'tsflow-dag-files-'));
    for (const [name, pkg] of Object.entries(FOLDERS)) {
      const folder = path.join(root, name);
      await mkdir(folder);
      if (pkg) await writeFile(path.join(folder, 'package.json'), JSON.stringify(pkg));
      for (const ext of EXTENSIONS) await writeFile(path.join(folder, `dag_${ext}.${ext}`), dagSource(`${name}_${ext}`, ext));
    }
    // CommonJS written as such, in the commonjs folder.
    await writeFile(
      path.join(root, 'cjs', 'required.js'),
      "const { BaseOperator, dag } = require('tsflow');\n" +
        "class Noop extends BaseOperator { execute() { return 1; } }\n" +
        "module.exports = dag({ dagId: 'cjs_required' }, () => { new Noop({ taskId: 'report' }); });\n",
    );
  });
  after(() => rm(root, { recursive: true, force: true }));

  for (const name of Object.keys(FOLDERS)) {
    it(`finds a DAG in each of .ts, .mts, .js and .mjs: ${name === 'bare' ? 'no package.json' : `package.json ${JSON.stringify(FOLDERS[name as keyof typeof FOLDERS])}`}`, async function () {
      this.timeout(30_000);
      const result = await tsflow(['dags', 'list', '--json', '--dags-folder', path.join(root, name)]);
      expect(result.code, result.stderr).to.equal(0);
      const listed = JSON.parse(result.stdout) as { dags: { dagId: string; tasks: string[] }[]; importErrors: unknown[] };
      expect(listed.importErrors).to.deep.equal([]);
      const expected = EXTENSIONS.map((ext) => `${name}_${ext}`);
      if (name === 'cjs') expected.push('cjs_required');
      expect(listed.dags.map((d) => d.dagId).sort()).to.deep.equal(expected.sort());
      for (const d of listed.dags) expect(d.tasks).to.deep.equal(['report']);
    });
  }

  describe('run by the scheduler and its worker processes', () => {
    let t: TestDatabase;
    before(async () => {
      t = await createTestDatabase();
    });
    after(() => t.drop());

    it('runs a .ts DAG from a "type": "commonjs" folder end to end (the LocalExecutor worker imports it too)', async function () {
      this.timeout(90_000);
      const result = await tsflow(['standalone', '--dags-folder', path.join(root, 'cjs'), '--run', 'cjs_ts', '--parallelism', '1'], { TSFLOW_DATABASE_URL: t.url });
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.contain("of cjs_ts finished: success");
      const xcom = await t.database.db.selectFrom('xcom').select('value').where('dag_id', '=', 'cjs_ts').executeTakeFirstOrThrow();
      expect(xcom.value).to.equal('tsflow.triggers.DateTimeTrigger');
    });
  });
});
