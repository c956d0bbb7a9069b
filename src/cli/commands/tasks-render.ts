import { DateTime } from 'luxon';
import { DagBag } from '../../dag-bag/dag-bag.ts';
import { renderContextFor, renderFields } from '../../runner/render-task.ts';
import { DAGS_FOLDER, dagsFolderOf } from '../common-options.ts';
import { parseLogicalDate } from '../run-args.ts';
import { withRuntime } from '../runtime.ts';
import { defineCommand } from '../usage.ts';

/**
 * `tsflow tasks render DAG TASK [LOGICAL_DATE]` (Airflow's `tasks render`): prints each templated
 * field of the task as it would be rendered for that logical date; exit 1 on a template error.
 */
export const tasksRender = defineCommand(
  {
    name: 'tasks render',
    summary: "print a task's templated fields rendered for a logical date; exit 1 on a template error",
    positionals: ['DAG', 'TASK'],
    optionalPositionals: ['LOGICAL_DATE'],
    options: { 'dags-folder': DAGS_FOLDER },
    details: [
      'The run with that logical date gives the run id and conf the templates see; without one, a manual',
      'run at that date with an empty conf (params at their defaults). Variables and connections come',
      'from TSFLOW_VAR_* / TSFLOW_CONN_* or the database; their secrets are masked in the output.',
      'LOGICAL_DATE is ISO 8601 (no offset means UTC); without it, now. Nothing is run or written.',
    ],
  },
  async ({ values, positionals }, settings) => {
    const [dagId, taskId, dateText] = positionals as [string, string, string | undefined];
    const logicalDate = dateText === undefined ? DateTime.utc() : parseLogicalDate(dateText, 'LOGICAL_DATE');
    const bag = await DagBag.load(dagsFolderOf(settings, values['dags-folder']));
    const task = bag.getDag(dagId).getTask(taskId);
    return withRuntime(settings, {}, async (runtime) => {
      const { context, runId } = await renderContextFor({ task, db: runtime.database.db, logicalDate, log: runtime.logger });
      if (runId === undefined) console.error(`(no run of ${dagId} has logical date ${logicalDate.toUTC().toISO()}: rendering for a manual run with an empty conf)`);
      const fields = await renderFields(task, context);
      if (fields.length === 0) console.log(`# task '${taskId}' has no templated fields`);
      for (const { field, value } of fields) {
        console.log(`# ${field}`);
        console.log(formatValue(value));
      }
      return 0;
    });
  },
);

function formatValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'function') return '(a function of the context: it runs when the task runs, not rendered)';
  if (value === undefined) return '(not set)';
  return JSON.stringify(value, null, 2);
}
