import os from 'node:os';
import { clearTaskInstances } from '../../db/clear.ts';
import { loadDag } from '../../dag-bag/load-dag.ts';
import { getDagRun } from '../../db/dag-runs.ts';
import { jobHostnames } from '../../db/jobs.ts';
import { listTaskInstances } from '../../db/task-instances.ts';
import { runTaskInstance } from '../../runner/task-runner.ts';
import { DAGS_FOLDER, dagsFolderOf, JSON_OUTPUT } from '../common-options.ts';
import { UsageError } from '../settings.ts';
import { withRuntime } from '../runtime.ts';
import { defineCommand } from '../usage.ts';

/** `tsflow tasks run DAG TASK RUN_ID`: runs one task instance once; exit 1 if it failed. */
export const tasksRun = defineCommand(
  {
    name: 'tasks run',
    summary: 'run one task instance once (what executors launch); exit 1 if it failed',
    positionals: ['DAG', 'TASK', 'RUN_ID'],
    options: {
      'dags-folder': DAGS_FOLDER,
      'map-index': { type: 'string', value: 'N', description: 'the map index of a mapped task instance (-1: unmapped)', default: '-1' },
    },
    details: ['The task instance must be queued (or resuming after a defer): tsflow tasks clear DAG RUN_ID --task TASK runs it again.'],
  },
  async ({ values, positionals }, settings) => {
    const [dagId, taskId, runId] = positionals as [string, string, string];
    const mapIndex = Number(values['map-index'] ?? '-1');
    if (!Number.isInteger(mapIndex) || mapIndex < -1) throw new UsageError(`--map-index must be a whole number ≥ -1, got '${values['map-index']}'`);
    const folder = dagsFolderOf(settings, values['dags-folder']);
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
        { dagId, runId, taskId, ...(mapIndex >= 0 && { mapIndex }) },
      );
      console.log(`${dagId}.${taskId}${mapIndex >= 0 ? `[${mapIndex}]` : ''} (${runId}) try ${result.tryNumber}: ${result.state}${result.error ? ` — ${result.error}` : ''}`);
      return result.state === 'failed' ? 1 : 0;
    });
  },
);

/** `tsflow tasks states DAG RUN_ID [--json]`. */
export const tasksStates = defineCommand(
  {
    name: 'tasks states',
    summary: "each task instance's state, try number, next method and host",
    positionals: ['DAG', 'RUN_ID'],
    options: { json: { ...JSON_OUTPUT, description: 'print [{ taskId, mapIndex, state, tryNumber, nextMethod, hostname }]' } },
  },
  async ({ values, positionals }, settings) => {
    const [dagId, runId] = positionals as [string, string];
    return withRuntime(settings, {}, async (runtime) => {
      const rows = await listTaskInstances(runtime.database.db, dagId, runId);
      if (rows.length === 0) {
        const run = await getDagRun(runtime.database.db, dagId, runId);
        if (!run) {
          console.error(`tsflow: error: DAG '${dagId}' has no run '${runId}': check both ids (tsflow dags trigger printed the run id), or start a run with tsflow dags trigger ${dagId}`);
          return 1;
        }
      }
      // The host running the try, else (graphile executor) the host of the tsflow worker that took its latest job.
      const workerHosts = rows.some((r) => r.worker_job_id !== null) ? await jobHostnames(runtime.database.db) : new Map<number, string>();
      const states = rows.map((r) => ({
        taskId: r.task_id,
        mapIndex: r.map_index,
        state: r.state,
        tryNumber: r.try_number,
        nextMethod: r.next_method,
        hostname: r.hostname ?? (r.worker_job_id === null ? null : (workerHosts.get(r.worker_job_id) ?? null)),
      }));
      if (values.json) console.log(JSON.stringify(states));
      else {
        for (const s of states) {
          console.log(`${(s.mapIndex >= 0 ? `${s.taskId}[${s.mapIndex}]` : s.taskId).padEnd(30)} ${(s.state ?? 'none').padEnd(18)} try ${s.tryNumber}${s.nextMethod ? `  next: ${s.nextMethod}` : ''}${s.hostname ? `  on ${s.hostname}` : ''}`);
        }
      }
      return 0;
    });
  },
);

/** `tsflow tasks clear DAG RUN_ID [--task ID]...`: reset task instances so they run again. */
export const tasksClear = defineCommand(
  {
    name: 'tasks clear',
    summary: "reset task instances so they run again; the run goes back to queued",
    positionals: ['DAG', 'RUN_ID'],
    options: {
      task: { type: 'string', multiple: true, value: 'ID', description: 'clear only this task (repeatable)', default: "all the run's tasks" },
      'dags-folder': DAGS_FOLDER,
    },
    details: ["A deferred task instance's trigger is cancelled. A mapped task is cleared whole and expanded again."],
  },
  async ({ values, positionals }, settings) => {
    const [dagId, runId] = positionals as [string, string];
    const folder = dagsFolderOf(settings, values['dags-folder']);
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
      for (const ti of cleared) console.log(`cleared ${dagId}.${ti.taskId}${ti.mapIndex !== undefined && ti.mapIndex >= 0 ? `[${ti.mapIndex}]` : ''} (${runId}), was ${ti.previousState ?? 'none'}`);
      return 0;
    });
  },
);
