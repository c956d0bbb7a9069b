import { readFileSync } from 'node:fs';
import { USAGE } from './args.ts';
import { dagsList, dagsState, dagsTrigger } from './commands/dags.ts';
import { schedulerCommand, standaloneCommand, triggererCommand } from './commands/daemons.ts';
import { dbCommand, jobsCheck, triggersList } from './commands/operations.ts';
import { tasksLogs } from './commands/task-logs.ts';
import { tasksClear, tasksRun, tasksStates } from './commands/tasks.ts';
import { workerCommand } from './commands/worker.ts';
import { readSettings, UsageError, type Settings } from './settings.ts';

type Command = (argv: string[], settings: Settings) => Promise<number>;

const COMMANDS: Record<string, Command | Record<string, Command>> = {
  standalone: standaloneCommand,
  scheduler: schedulerCommand,
  triggerer: triggererCommand,
  worker: workerCommand,
  tasks: { run: tasksRun, states: tasksStates, clear: tasksClear, logs: tasksLogs },
  dags: { list: dagsList, trigger: dagsTrigger, state: dagsState },
  triggers: { list: triggersList },
  jobs: { check: jobsCheck },
};

/** Runs a tsflow command; returns the exit code. Errors become one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  let settings: Settings | undefined;
  try {
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      console.log(USAGE);
      return name === undefined ? 2 : 0;
    }
    if (name === 'version' || name === '--version') {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      console.log(`tsflow ${pkg.version} (node ${process.version})`);
      return 0;
    }
    settings = readSettings();
    if (name === 'db') return await dbCommand(rest[0], rest.slice(1), settings);
    const entry = COMMANDS[name];
    if (entry === undefined) throw new UsageError(`unknown command '${name}'; run tsflow help`);
    if (typeof entry === 'function') return await entry(rest, settings);
    const [sub, ...subArgs] = rest;
    const command = sub === undefined ? undefined : entry[sub];
    if (!command) throw new UsageError(`tsflow ${name} needs one of: ${Object.keys(entry).join(', ')} (got ${sub ?? 'nothing'})`);
    return await command(subArgs, settings);
  } catch (error) {
    return report(error, settings);
  }
}

function report(error: unknown, settings: Settings | undefined): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`tsflow: error: ${message}`);
  if (settings?.logLevel === 'debug' || settings?.logLevel === 'trace') console.error(error);
  return error instanceof UsageError ? 2 : 1;
}
