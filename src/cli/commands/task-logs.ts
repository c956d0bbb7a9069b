import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { attemptsIn, formatLogLine, taskLogFolder, taskLogPath } from '../../runner/task-log.ts';
import { parse } from '../args.ts';
import { parseCount, type Settings } from '../settings.ts';

/**
 * `tsflow tasks logs DAG TASK RUN_ID [--try N] [--json]`: prints a try's log file — the latest try by
 * default — as text (`--json`: the raw JSON lines). Reads the logs folder only, no database.
 */
export async function tasksLogs(argv: string[], settings: Settings): Promise<number> {
  const usage = 'tsflow tasks logs DAG TASK RUN_ID [--try N] [--json]';
  const { values, positionals } = parse(argv, { try: { type: 'string' }, json: { type: 'boolean' } }, usage, { min: 3, max: 3 });
  const [dagId, taskId, runId] = positionals as [string, string, string];
  const key = { dagId, runId, taskId };
  const folder = taskLogFolder(settings.logsFolder, key);
  const attempts = attemptsIn(await readdir(folder).catch(() => []));
  const name = `${dagId}.${taskId} in run '${runId}'`;
  if (attempts.length === 0) {
    console.error(
      `tsflow: error: no logs for ${name} under ${folder}: check the ids (tsflow tasks states ${dagId} ${runId}), ` +
        'whether the task has run yet, and that TSFLOW_LOGS_FOLDER / TSFLOW_HOME match the scheduler\'s',
    );
    return 1;
  }
  const tryNumber = values.try === undefined ? (attempts.at(-1) as number) : parseCount(values.try, '--try', 1);
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
}
