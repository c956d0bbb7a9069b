import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { attemptsIn, formatLogLine, taskLogFolder, taskLogPath } from '../../runner/task-log.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { parseCount } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/**
 * `tsflow tasks logs DAG TASK RUN_ID [--try N] [--json]`: prints a try's log file — the latest try by
 * default — as text (`--json`: the raw JSON lines). Reads the logs folder only, no database.
 */
export const tasksLogs = defineCommand(
  {
    name: 'tasks logs',
    summary: "a try's log as text",
    positionals: ['DAG', 'TASK', 'RUN_ID'],
    options: {
      try: { type: 'string', value: 'N', description: 'which try', default: 'the latest' },
      'map-index': { type: 'string', value: 'N', description: 'the map index of a mapped task instance', default: '-1 (unmapped)' },
      json: { ...JSON_OUTPUT, description: 'print the raw JSON lines' },
    },
    details: ['Reads $TSFLOW_LOGS_FOLDER (default $TSFLOW_HOME/logs) only; no database is needed.'],
  },
  async ({ values, positionals }, settings) => {
    const [dagId, taskId, runId] = positionals as [string, string, string];
    const wantedTry = values.try === undefined ? undefined : parseCount(values.try, '--try', 1);
    const mapIndex = values['map-index'] === undefined ? -1 : parseCount(values['map-index'], '--map-index', 0);
    const key = { dagId, runId, taskId, mapIndex };
    const folder = taskLogFolder(settings.logsFolder, key);
    const attempts = attemptsIn(await readdir(folder).catch(() => []));
    const name = `${dagId}.${taskId}${mapIndex >= 0 ? `[${mapIndex}]` : ''} in run '${runId}'`;
    if (attempts.length === 0) {
      console.error(
        `tsflow: error: no logs for ${name} under ${folder}: check the ids (tsflow tasks states ${dagId} ${runId}), ` +
          'whether the task has run yet, and that TSFLOW_LOGS_FOLDER / TSFLOW_HOME match the scheduler\'s; ' +
          'a try run by a tsflow worker logs to that worker\'s machine, which tsflow tasks states names',
      );
      return 1;
    }
    const tryNumber = wantedTry ?? (attempts.at(-1) as number);
    if (!attempts.includes(tryNumber)) {
      console.error(`tsflow: error: ${name} has no log for try ${tryNumber}; tries with logs: ${attempts.join(', ')}`);
      return 1;
    }
    const file = taskLogPath(settings.logsFolder, key, tryNumber);
    const text = await readFile(file, 'utf8');
    if (values.json) {
      process.stdout.write(text);
    } else {
      console.log(`*** ${path.relative(process.cwd(), file).startsWith('..') ? file : path.relative(process.cwd(), file)} (try ${tryNumber} of ${attempts.at(-1)})`);
      for (const line of text.split('\n')) if (line.trim() !== '') console.log(formatLogLine(line));
    }
    return 0;
  },
);
