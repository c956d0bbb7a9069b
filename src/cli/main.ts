import { readFileSync } from 'node:fs';
import { apiServerCommand } from './commands/api-server.ts';
import { usersCreate, usersDelete, usersList, usersToken } from './commands/users.ts';
import { dagsBackfill, dagsListRuns, dagsNextExecution, dagsPause, dagsUnpause } from './commands/dag-ops.ts';
import { dagsTest } from './commands/dags-test.ts';
import { dagParserCommand, dagProcessorCommand } from './commands/dag-processor.ts';
import { dagsList, dagsListImportErrors, dagsState, dagsTrigger } from './commands/dags.ts';
import { schedulerCommand, standaloneCommand, triggererCommand } from './commands/daemons.ts';
import { dbMigrate, dbReset, dbStart, dbStatus, dbStop, jobsCheck, triggersList } from './commands/operations.ts';
import { CONNECTION_COMMANDS } from './commands/connections.ts';
import { poolsDelete, poolsGet, poolsList, poolsSet } from './commands/pools.ts';
import { rotateSecretsCommand, secretsGenerateKey } from './commands/secrets.ts';
import { VARIABLE_COMMANDS } from './commands/variables.ts';
import { EVENT_COMMANDS } from './commands/events.ts';
import { HITL_COMMANDS } from './commands/hitl.ts';
import { tasksLogs } from './commands/task-logs.ts';
import { triggersCancel, triggersExtend, triggersFire, triggersWaits } from './commands/triggers.ts';
import { tasksClear, tasksRun, tasksStates } from './commands/tasks.ts';
import { tasksTest } from './commands/tasks-test.ts';
import { tasksRender } from './commands/tasks-render.ts';
import { taskWorkerCommand } from './commands/task-worker.ts';
import { workerCommand, workersList } from './commands/worker.ts';
import { dagCodeHostCommand } from './commands/dag-code-host.ts';
import { installOutputMasking } from './output-masking.ts';
import { overview } from './overview.ts';
import { readSettings, UsageError, type Settings } from './settings.ts';
import { commandHelp, groupHelp, type Command } from './usage.ts';

/** Every command, in the order the overview lists them. A group's commands share its first word. */
export const COMMANDS: readonly Command[] = [
  standaloneCommand,
  schedulerCommand,
  triggererCommand,
  dagProcessorCommand,
  workerCommand,
  apiServerCommand,
  dagsList,
  dagsListImportErrors,
  dagsTrigger,
  dagsState,
  dagsListRuns,
  dagsPause,
  dagsUnpause,
  dagsNextExecution,
  dagsBackfill,
  dagsTest,
  tasksRun,
  tasksStates,
  tasksLogs,
  tasksClear,
  tasksTest,
  tasksRender,
  triggersList,
  triggersWaits,
  triggersFire,
  triggersCancel,
  triggersExtend,
  ...EVENT_COMMANDS,
  ...HITL_COMMANDS,
  poolsSet,
  poolsList,
  poolsGet,
  poolsDelete,
  ...CONNECTION_COMMANDS,
  ...VARIABLE_COMMANDS,
  rotateSecretsCommand,
  secretsGenerateKey,
  workersList,
  usersCreate,
  usersList,
  usersDelete,
  usersToken,
  jobsCheck,
  dbMigrate,
  dbReset,
  dbStatus,
  dbStart,
  dbStop,
  taskWorkerCommand,
  dagCodeHostCommand,
  dagParserCommand,
];

const isHelp = (arg: string | undefined): boolean => arg === '--help' || arg === '-h';

/** Runs a tsflow command; returns the exit code. Errors become one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  installOutputMasking();
  let settings: Settings | undefined;
  const loadSettings = (): Settings => (settings = readSettings());
  try {
    const [name, ...rest] = argv;
    if (name === undefined) {
      console.error(overview(COMMANDS));
      return 2;
    }
    if (name === 'help' || isHelp(name)) return help(rest);
    if (name === 'version' || name === '--version') {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      console.log(`tsflow ${pkg.version} (node ${process.version})`);
      return 0;
    }
    const single = COMMANDS.find((c) => c.spec.name === name);
    if (single) return await single.run(rest, loadSettings);
    const group = COMMANDS.filter((c) => c.spec.name.startsWith(`${name} `));
    if (group.length === 0) throw new UsageError(`unknown command '${name}': run tsflow help for the list of commands`);
    const [sub, ...subArgs] = rest;
    if (isHelp(sub)) {
      console.log(groupHelp(name, group));
      return 0;
    }
    const command = group.find((c) => c.spec.name === `${name} ${sub}`);
    if (!command) {
      const choices = group.filter((c) => !c.spec.hidden).map((c) => c.spec.name.split(' ')[1]);
      throw new UsageError(`tsflow ${name} needs one of: ${choices.join(', ')} (got ${sub === undefined ? 'nothing' : `'${sub}'`}); tsflow ${name} --help says what each does`);
    }
    return await command.run(subArgs, loadSettings);
  } catch (error) {
    return report(error, settings);
  }
}

/** `tsflow help`, `tsflow help dags`, `tsflow help dags trigger`. */
function help(words: readonly string[]): number {
  const wanted = words.filter((w) => !isHelp(w)).join(' ');
  if (wanted === '') {
    console.log(overview(COMMANDS));
    return 0;
  }
  const command = COMMANDS.find((c) => c.spec.name === wanted);
  if (command) {
    console.log(commandHelp(command.spec));
    return 0;
  }
  const group = COMMANDS.filter((c) => c.spec.name.startsWith(`${wanted} `));
  if (group.length === 0) throw new UsageError(`no command '${wanted}': run tsflow help for the list of commands`);
  console.log(groupHelp(wanted, group));
  return 0;
}

function report(error: unknown, settings: Settings | undefined): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`tsflow: error: ${message}`);
  if (settings?.logLevel === 'debug' || settings?.logLevel === 'trace') console.error(error);
  return error instanceof UsageError ? 2 : 1;
}
