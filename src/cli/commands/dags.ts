import path from 'node:path';
import { DateTime } from 'luxon';
import { DagBag } from '../../dag-bag/dag-bag.ts';
import { createDagRun, getDagRun, upsertDags } from '../../db/dag-runs.ts';
import { Channels } from '../../db/protocol.ts';
import { Wakeup } from '../../common/wakeup.ts';
import { parse } from '../args.ts';
import { createNotifier } from '../components.ts';
import { parseConf } from '../json-arg.ts';
import { withRuntime } from '../runtime.ts';
import type { Settings } from '../settings.ts';

function dagsFolderOf(settings: Settings, value: string | undefined): string {
  return value ? path.resolve(value) : settings.dagsFolder;
}

/** `tsflow dags list`: reads the DAG folder (no database needed). Exit 1 if a file failed to import. */
export async function dagsList(argv: string[], settings: Settings): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' }, 'dags-folder': { type: 'string' } }, 'tsflow dags list [--json] [--dags-folder DIR]');
  const bag = await DagBag.load(dagsFolderOf(settings, values['dags-folder']));
  const dags = [...bag.dags.values()].sort((a, b) => a.dagId.localeCompare(b.dagId));
  const errors = [...bag.importErrors].map(([file, error]) => ({ file, error: error.message }));
  if (values.json) {
    console.log(JSON.stringify({ dags: dags.map((d) => ({ dagId: d.dagId, fileloc: d.fileloc, tasks: [...d.tasks.keys()] })), importErrors: errors }));
  } else {
    for (const d of dags) console.log(`${d.dagId.padEnd(30)} ${String(d.tasks.size).padStart(3)} task(s)  ${path.relative(process.cwd(), d.fileloc ?? '')}`);
    for (const e of errors) console.error(`tsflow: error: ${path.relative(process.cwd(), e.file)} failed to import: ${e.error}`);
  }
  return errors.length > 0 ? 1 : 0;
}

/** `tsflow dags trigger DAG [--run-id ID] [--conf JSON] [--wait]`. */
export async function dagsTrigger(argv: string[], settings: Settings): Promise<number> {
  const usage = 'tsflow dags trigger DAG [--run-id ID] [--conf JSON] [--wait] [--dags-folder DIR]';
  const { values, positionals } = parse(
    argv,
    { 'run-id': { type: 'string' }, conf: { type: 'string' }, wait: { type: 'boolean' }, 'dags-folder': { type: 'string' } },
    usage,
    { min: 1, max: 1 },
  );
  const dagId = positionals[0] as string;
  const conf = parseConf(values.conf);
  const bag = await DagBag.load(dagsFolderOf(settings, values['dags-folder']));
  const dag = bag.getDag(dagId);
  const runId = values['run-id'] ?? `manual__${DateTime.utc().toISO()}`;
  return withRuntime(settings, {}, async (runtime) => {
    const { db } = runtime.database;
    await upsertDags(db, [{ dagId, fileloc: dag.fileloc ?? '', description: dag.description }]);
    const notifier = values.wait ? createNotifier(runtime, [Channels.ti]) : undefined;
    const wakeup = new Wakeup();
    notifier?.on('notification', () => wakeup.nudge());
    await notifier?.start();
    try {
      await createDagRun(db, { dagId, runId, conf, logicalDate: new Date() });
      console.log(`triggered ${dagId} run '${runId}'`);
      if (!values.wait) return 0;
      for (;;) {
        const run = await getDagRun(db, dagId, runId);
        if (run?.state === 'success' || run?.state === 'failed') {
          console.log(`run '${runId}' of ${dagId} finished: ${run.state}`);
          return run.state === 'success' ? 0 : 1;
        }
        await wakeup.wait(2000);
      }
    } finally {
      await notifier?.stop();
    }
  });
}

/** `tsflow dags state DAG RUN_ID`. */
export async function dagsState(argv: string[], settings: Settings): Promise<number> {
  const { positionals } = parse(argv, {}, 'tsflow dags state DAG RUN_ID', { min: 2, max: 2 });
  const [dagId, runId] = positionals as [string, string];
  return withRuntime(settings, {}, async (runtime) => {
    const run = await getDagRun(runtime.database.db, dagId, runId);
    if (!run) {
      console.error(`tsflow: error: DAG '${dagId}' has no run '${runId}'`);
      return 1;
    }
    console.log(run.state);
    return 0;
  });
}
