import os from 'node:os';
import path from 'node:path';
import { clearTaskInstances } from '../../db/clear.ts';
import { loadDag } from '../../dag-bag/load-dag.ts';
import { listTaskInstances } from '../../db/task-instances.ts';
import { runTaskInstance } from '../../runner/task-runner.ts';
import { parse } from '../args.ts';
import { withRuntime } from '../runtime.ts';
import type { Settings } from '../settings.ts';

/** `tsflow tasks run DAG TASK RUN_ID`: runs one task instance once; exit 1 if it failed. */
export async function tasksRun(argv: string[], settings: Settings): Promise<number> {
  const { values, positionals } = parse(argv, { 'dags-folder': { type: 'string' } }, 'tsflow tasks run DAG TASK RUN_ID', { min: 3, max: 3 });
  const [dagId, taskId, runId] = positionals as [string, string, string];
  const folder = values['dags-folder'] ? path.resolve(values['dags-folder']) : settings.dagsFolder;
  return withRuntime(settings, { applicationName: 'tsflow-task' }, async (runtime) => {
    const dag = await loadDag(runtime.database.db, folder, dagId);
    dag.getTask(taskId);
    const result = await runTaskInstance(
      {
        db: runtime.database.db,
        logger: runtime.logger,
        hostname: os.hostname(),
        pid: process.pid,
        defaults: { deferrable: settings.defaultDeferrable },
        logsFolder: settings.logsFolder,
      },
      dag,
      { dagId, runId, taskId },
    );
    console.log(`${dagId}.${taskId} (${runId}) try ${result.tryNumber}: ${result.state}${result.error ? ` — ${result.error}` : ''}`);
    return result.state === 'failed' ? 1 : 0;
  });
}

/** `tsflow tasks states DAG RUN_ID [--json]`. */
export async function tasksStates(argv: string[], settings: Settings): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, 'tsflow tasks states DAG RUN_ID [--json]', { min: 2, max: 2 });
  const [dagId, runId] = positionals as [string, string];
  return withRuntime(settings, {}, async (runtime) => {
    const rows = await listTaskInstances(runtime.database.db, dagId, runId);
    if (rows.length === 0) {
      const run = await runtime.database.db.selectFrom('dag_run').select('state').where('dag_id', '=', dagId).where('run_id', '=', runId).executeTakeFirst();
      if (!run) {
        console.error(`tsflow: error: DAG '${dagId}' has no run '${runId}': list runs with tsflow dags state, or trigger one with tsflow dags trigger`);
        return 1;
      }
    }
    const states = rows.map((r) => ({ taskId: r.task_id, state: r.state, tryNumber: r.try_number, nextMethod: r.next_method }));
    if (values.json) console.log(JSON.stringify(states));
    else for (const s of states) console.log(`${s.taskId.padEnd(30)} ${(s.state ?? 'none').padEnd(18)} try ${s.tryNumber}${s.nextMethod ? `  next: ${s.nextMethod}` : ''}`);
    return 0;
  });
}

/** `tsflow tasks clear DAG RUN_ID [--task ID]...`: reset task instances so they run again. */
export async function tasksClear(argv: string[], settings: Settings): Promise<number> {
  const usage = 'tsflow tasks clear DAG RUN_ID [--task ID]... [--dags-folder DIR]';
  const { values, positionals } = parse(argv, { task: { type: 'string', multiple: true }, 'dags-folder': { type: 'string' } }, usage, { min: 2, max: 2 });
  const [dagId, runId] = positionals as [string, string];
  const folder = values['dags-folder'] ? path.resolve(values['dags-folder']) : settings.dagsFolder;
  return withRuntime(settings, {}, async (runtime) => {
    const dag = await loadDag(runtime.database.db, folder, dagId);
    const taskIds = values.task ?? [];
    for (const taskId of taskIds) dag.getTask(taskId);
    const retries = new Map([...dag.tasks.values()].map((t) => [t.taskId, t.settings.retries]));
    const cleared = await clearTaskInstances(runtime.database.db, { dagId, runId, taskIds, retries });
    if (cleared.length === 0) {
      console.error(`tsflow: error: nothing to clear: DAG '${dagId}' has no run '${runId}'${taskIds.length ? ` with tasks ${taskIds.join(', ')}` : ''}`);
      return 1;
    }
    for (const ti of cleared) console.log(`cleared ${dagId}.${ti.taskId} (${runId}), was ${ti.previousState ?? 'none'}`);
    return 0;
  });
}
