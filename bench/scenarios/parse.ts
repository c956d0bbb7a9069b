import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { DagProcessor } from '../../src/dag-processor/dag-processor.ts';
import { openBenchDatabase } from '../lib/bench-database.ts';
import { serverInfo, target, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/scenario.ts';
import { until } from '../lib/seed.ts';

function dagSource(dagId: string, schedule: string): string {
  return [
    "import { BaseOperator, chain, dag } from 'tsflow';",
    'class Step extends BaseOperator { override execute(): number { return 1; } }',
    `export default dag({ dagId: '${dagId}', schedule: '${schedule}', startDate: '2026-01-01T00:00:00Z', tags: ['bench'] }, () => {`,
    "  chain(new Step({ taskId: 'extract' }), new Step({ taskId: 'transform' }), new Step({ taskId: 'load' }));",
    '});',
    '',
  ].join('\n');
}

/**
 * Parse: a DAG processor on a folder of small DAG files (three tasks each). The time from its start
 * to every file's serialized DAG written (the first full parse: child processes, imports, one
 * transaction per file), then the time from one file's schedule edited to its serialized_dag row
 * changed (the watch, the debounce, one child started for one file, the write).
 */
export const parse: Scenario = {
  name: 'parse',
  title: 'DAG folder → serialized_dag',
  async run(context: ScenarioContext): Promise<ScenarioResult[]> {
    const files = context.smoke ? 20 : 1000;
    const edits = context.smoke ? 1 : 5;
    const folder = await mkdtemp(path.join(os.tmpdir(), 'tsflow-bench-parse-'));
    const db = await openBenchDatabase('parse', context.adminUrl);
    const processor = new DagProcessor({ database: db.database, folder, logger: silentLogger() }, { scanIntervalMs: 600_000 });
    try {
      await writeFile(path.join(folder, 'package.json'), JSON.stringify({ type: 'module' }));
      const ids = Array.from({ length: files }, (_, i) => `parse_${String(i).padStart(4, '0')}`);
      for (const id of ids) await writeFile(path.join(folder, `${id}.ts`), dagSource(id, '@daily'));
      const count = async (): Promise<boolean> =>
        Number((await db.database.db.selectFrom('serialized_dag').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n) === files;

      const started = performance.now();
      await processor.start();
      await until(count, `${files} serialized DAGs`, 600_000, 20);
      const firstParseMs = performance.now() - started;
      context.log(`first parse of ${files} files: ${(firstParseMs / 1000).toFixed(2)} s`);

      const changes: number[] = [];
      for (let edit = 0; edit < edits; edit++) {
        const id = ids[Math.floor((edit + 0.5) * (files / edits))] as string;
        const schedule = `${edit + 1} 4 * * *`;
        const editedAt = performance.now();
        await writeFile(path.join(folder, `${id}.ts`), dagSource(id, schedule));
        await until(
          async () =>
            (await db.database.db.selectFrom('serialized_dag').select('data').where('dag_id', '=', id).executeTakeFirstOrThrow()).data.timetableSummary === schedule,
          `${id}'s new schedule`,
          60_000,
          5,
        );
        changes.push(performance.now() - editedAt);
      }
      changes.sort((a, b) => a - b);
      const median = changes[Math.floor(changes.length / 2)] as number;
      return [
        {
          scenario: 'parse',
          title: `${files} DAG files: first full parse, then one file's schedule edited (${edits} times)`,
          settings: { files, tasksPerDag: 3, parsingProcesses: processor.options.parsingProcesses, debounceMs: processor.options.debounceMs },
          figures: {
            firstParseMs,
            filesPerSecond: files / (firstParseMs / 1000),
            editToRowP50Ms: median,
            editToRowMaxMs: changes[changes.length - 1] as number,
          },
          targets: context.smoke ? [] : [target('first parse of 1,000 files', '60 s', firstParseMs / 1000, 60, 's'), target('edit → serialized_dag row (p50)', '2000 ms', median, 2000)],
          server: serverInfo(db),
        },
      ];
    } finally {
      await processor.stop();
      await db.close();
      await rm(folder, { recursive: true, force: true });
    }
  },
};
