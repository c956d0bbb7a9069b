import { DateTime } from 'luxon';
import { pino } from 'pino';
import { DagBag } from '../../dag-bag/dag-bag.ts';
import { formatLogLine } from '../../runner/task-log.ts';
import { testTask } from '../../runner/test-task.ts';
import { TriggerRegistry } from '../../triggerer/trigger-registry.ts';
import { createLogger } from '../../common/logger.ts';
import { DAGS_FOLDER, dagsFolderOf, TRIGGERS_FOLDER, triggersFoldersOf } from '../common-options.ts';
import { parseConf } from '../json-arg.ts';
import { checkConfAgainstParams, parseLogicalDate } from '../run-args.ts';
import { defineCommand } from '../usage.ts';

/**
 * `tsflow tasks test DAG TASK [LOGICAL_DATE]` (Airflow's `tasks test`): runs one task's code here,
 * upstream tasks ignored, and writes nothing — no database, no log file. Exit 0 on success (or skip).
 */
export const tasksTest = defineCommand(
  {
    name: 'tasks test',
    summary: "run one task's code in this process, writing no state; exit 0 if it succeeded",
    positionals: ['DAG', 'TASK'],
    optionalPositionals: ['LOGICAL_DATE'],
    options: {
      conf: { type: 'string', value: 'JSON', description: "a JSON object the task sees as context.conf; it overrides the DAG's params, checked first", default: '{}' },
      'dags-folder': DAGS_FOLDER,
      'triggers-folder': TRIGGERS_FOLDER,
    },
    details: [
      'Needs no database: nothing is written, XCom pushes are printed instead of stored, and xcomPull',
      'finds nothing (upstream tasks are not run). A deferral runs its trigger in this process, then',
      'the task resumes with the event, as the triggerer would do. The log lines and the return value',
      'are printed. LOGICAL_DATE is ISO 8601 (no offset means UTC); without it, now.',
    ],
  },
  async ({ values, positionals }, settings) => {
    const [dagId, taskId, dateText] = positionals as [string, string, string | undefined];
    const conf = parseConf(values.conf);
    const logicalDate = dateText === undefined ? DateTime.utc() : parseLogicalDate(dateText, 'LOGICAL_DATE');
    const bag = await DagBag.load(dagsFolderOf(settings, values['dags-folder']));
    const task = bag.getDag(dagId).getTask(taskId);
    checkConfAgainstParams(task.dag, conf);
    const registry = await TriggerRegistry.create({ folders: triggersFoldersOf(settings, values['triggers-folder']), logger: createLogger(settings.logLevel ?? 'warn') });
    // The task log goes to stdout as `tasks logs` would print it; at least `info`, as in a log file.
    const level = settings.logLevel === 'debug' || settings.logLevel === 'trace' ? settings.logLevel : 'info';
    const log = pino(
      { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
      { write: (line: string) => console.log(formatLogLine(line.trimEnd())) },
    ).child({ dagId, taskId });
    const result = await testTask({
      task,
      logicalDate,
      conf,
      registry,
      log,
      defaults: { deferrable: settings.defaultDeferrable },
      onXcom: (key, value) => {
        if (key !== 'return_value') console.log(`xcom push (not stored): ${key} = ${JSON.stringify(value)}`);
      },
    });
    switch (result.state) {
      case 'success':
        console.log(`${dagId}.${taskId}: success; returned ${result.value === undefined ? 'nothing' : JSON.stringify(result.value)}`);
        return 0;
      case 'skipped':
        console.log(`${dagId}.${taskId}: skipped — ${result.message}`);
        return 0;
      case 'failed':
        console.log(`${dagId}.${taskId}: failed — ${result.error}`);
        return 1;
    }
  },
);
