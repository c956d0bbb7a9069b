import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './settings.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** `util.parseArgs`, strict, with errors that name the command and show its usage. */
export function parse<O extends Options>(
  argv: string[],
  options: O,
  usage: string,
  positionals: { min: number; max: number } = { min: 0, max: 0 },
): { values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>['values']; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.replace(/\. To specify.*$/s, '')}\nusage: ${usage}`);
  }
  if (parsed.positionals.length < positionals.min || parsed.positionals.length > positionals.max) {
    throw new UsageError(`wrong number of arguments\nusage: ${usage}`);
  }
  return parsed;
}

export const USAGE = `tsflow — deferrable workflows on PostgreSQL

usage: tsflow <command> [options]

daemons
  standalone [--run DAG_ID] [--conf JSON]  scheduler + executor + triggerer in one process (dev, demo)
  scheduler [--executor local|sequential] [--parallelism N]
                                            the scheduler loop and its executor (default local, 32)
  triggerer [--capacity N]                  the triggerer daemon; run several for HA and scale

dags and tasks
  dags list [--json]                        the DAGs in the DAG folder, and files that failed to import
  dags trigger DAG [--run-id ID] [--conf JSON] [--wait]
  dags state DAG RUN_ID                     the state of a run
  tasks run DAG TASK RUN_ID                 run one task instance once (what executors launch)
  tasks states DAG RUN_ID [--json]          each task instance's state, try number and next method
  tasks logs DAG TASK RUN_ID [--try N]      a try's log (the latest by default)
  tasks clear DAG RUN_ID [--task ID]...     reset task instances so they run again
  triggers list [--json]                    every trigger: classpath, owner, task, age, due time

operations
  db migrate | db reset --yes | db start | db stop | db status
  jobs check --job-type triggerer|scheduler [--hostname H] [--limit N] [--allow-multiple]
  version

Common options: --dags-folder DIR (TSFLOW_DAGS_FOLDER, default ./dags),
--triggers-folder DIR (TSFLOW_TRIGGERS_FOLDER), and the TSFLOW_* variables in the README.
Without TSFLOW_DATABASE_URL every command uses the embedded PostgreSQL under TSFLOW_HOME (~/.tsflow).`;
