import { columnWidth, table, usageLine, type Command } from './usage.ts';

/** Which section of the overview a command's first word belongs to. */
const SECTIONS: readonly (readonly [string, readonly string[]])[] = [
  ['daemons', ['standalone', 'scheduler', 'triggerer', 'dag-processor', 'worker', 'api-server']],
  ['dags and tasks', ['dags', 'tasks', 'triggers', 'events', 'hitl']],
  ['connections, variables and secrets', ['connections', 'variables', 'rotate-secrets', 'secrets']],
  ['operations', ['pools', 'workers', 'jobs', 'users', 'db']],
];

/** `tsflow help`: every command (from the same specs as each `--help`), then where settings come from. */
export function overview(commands: readonly Command[]): string {
  const visible = commands.filter((c) => !c.spec.hidden);
  const row = (c: Command) => [usageLine(c.spec), c.spec.summary] as const;
  const version = ['version', 'the tsflow and Node.js versions'] as const;
  const width = columnWidth([...visible.map(row), version]);
  const lines = ['tsflow — deferrable workflows on PostgreSQL', '', 'usage: tsflow <command> [options]'];
  for (const [title, words] of SECTIONS) {
    const listed = visible.filter((c) => words.includes(firstWord(c)));
    lines.push('', title, ...table(listed.map(row), width));
  }
  const sectioned = new Set(SECTIONS.flatMap(([, words]) => words));
  lines.push(...table([...visible.filter((c) => !sectioned.has(firstWord(c))).map(row), version], width));
  lines.push(
    '',
    'tsflow <command> --help lists a command\'s options and their defaults; tsflow dags --help lists the dags commands.',
    'Settings come from TSFLOW_* variables (see the README): TSFLOW_DATABASE_URL (unset: the embedded',
    'PostgreSQL under TSFLOW_HOME, default ~/.tsflow), TSFLOW_DAGS_FOLDER (default ./dags), TSFLOW_LOG_LEVEL.',
  );
  return lines.join('\n');
}

function firstWord(command: Command): string {
  return command.spec.name.split(' ')[0] as string;
}
