import { parseArgs } from 'node:util';
import { UsageError, type Settings } from './settings.ts';

/**
 * One definition per command: its options with their descriptions and defaults. The parser config,
 * the `--help` text and the overview are all derived from it, so they cannot drift apart.
 */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** May be given more than once (values collect in an array). */
  readonly multiple?: boolean;
  /** What the value stands for in the help: `N`, `S` (seconds), `DIR`, `JSON`. */
  readonly value?: string;
  /** One line. */
  readonly description: string;
  /** The default as the help shows it (the code applies it; parseArgs never does). */
  readonly default?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

export interface CommandSpec<O extends OptionSpecs = OptionSpecs> {
  /** As typed: `dags trigger`. */
  readonly name: string;
  /** One line for the overview and the help. */
  readonly summary: string;
  /** Required positional arguments, in order: `['DAG', 'RUN_ID']`. */
  readonly positionals?: readonly string[];
  /** Positional arguments after the required ones that may be left out: `['LOGICAL_DATE']`. */
  readonly optionalPositionals?: readonly string[];
  readonly options: O;
  /** Further lines of help (what the exit code means, where the input comes from). */
  readonly details?: readonly string[];
  /** Left out of the overview (the worker the LocalExecutor forks). */
  readonly hidden?: boolean;
}

type ValueOf<S extends OptionSpec> = S['type'] extends 'boolean' ? boolean : S['multiple'] extends true ? string[] : string;

export interface ParsedArgs<O extends OptionSpecs> {
  readonly values: { readonly [K in keyof O]?: ValueOf<O[K]> };
  readonly positionals: readonly string[];
}

export interface Command {
  readonly spec: CommandSpec;
  /**
   * Parses `argv` (a usage error names what was wrong and shows the usage), prints the help instead
   * when `--help`/`-h` is among the options, and otherwise runs the command. `settings` is called
   * only after parsing, so `--help` works whatever the environment holds.
   */
  run(argv: readonly string[], settings: () => Settings): Promise<number>;
}

const HELP: OptionSpec = { type: 'boolean', description: 'show this help and exit' };

export function defineCommand<O extends OptionSpecs>(
  spec: CommandSpec<O>,
  handler: (args: ParsedArgs<O>, settings: Settings) => Promise<number>,
): Command {
  return {
    spec,
    run: async (argv, settings) => {
      const parsed = parseCommandArgs(spec, argv);
      if (parsed === 'help') {
        console.log(commandHelp(spec));
        return 0;
      }
      return handler(parsed, settings());
    },
  };
}

/** `util.parseArgs`, strict, configured from the spec; `'help'` when `--help`/`-h` was given. */
export function parseCommandArgs<O extends OptionSpecs>(spec: CommandSpec<O>, argv: readonly string[]): ParsedArgs<O> | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, option] of Object.entries(spec.options)) options[name] = { type: option.type, multiple: option.multiple ?? false };
  let parsed;
  const { args, negatives } = shieldNegativePositionals(joinNegativeValues(argv, spec.options));
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.replace(/\. To specify.*$/s, '')}\nusage: ${synopsis(spec)}\n(tsflow ${spec.name} --help lists the options)`);
  }
  if (parsed.values['help'] === true) return 'help';
  const expected = spec.positionals ?? [];
  const optional = spec.optionalPositionals ?? [];
  const positionals = parsed.positionals.map((p) => negatives.get(p) ?? p);
  const count = positionals.length;
  if (count < expected.length || count > expected.length + optional.length) {
    const got = positionals.length === 0 ? 'none' : positionals.map((p) => `'${p}'`).join(' ');
    const what =
      expected.length + optional.length === 0
        ? 'no arguments'
        : optional.length === 0
          ? `${expected.length} argument(s), ${expected.join(' ')}`
          : `${expected.length} to ${expected.length + optional.length} arguments, ${usageArgs(spec)}`;
    throw new UsageError(`tsflow ${spec.name} takes ${what}; got ${got}\nusage: ${synopsis(spec)}`);
  }
  const { help: _help, ...values } = parsed.values;
  return { values: values as ParsedArgs<O>['values'], positionals };
}

/**
 * parseArgs refuses `--capacity -5` as "ambiguous" (the value looks like an option). A string
 * option followed by something that reads as a negative number takes it as its value, so the
 * option's own check can say what is wrong with it ("must be a whole number ≥ 1, got -5").
 */
function joinNegativeValues(argv: readonly string[], options: OptionSpecs): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/**
 * A positional that reads as a negative number (`pools set NAME -1`) would be taken for an option:
 * it passes parseArgs as a placeholder and is put back in the positionals afterwards.
 */
function shieldNegativePositionals(argv: readonly string[]): { args: string[]; negatives: Map<string, string> } {
  const negatives = new Map<string, string>();
  const end = argv.indexOf('--');
  const args = argv.map((arg, i) => {
    if ((end !== -1 && i > end) || !/^-(\d|\.\d)/.test(arg)) return arg;
    const token = `\u0000negative-${i}`;
    negatives.set(token, arg);
    return token;
  });
  return { args, negatives };
}

/** `tsflow dags trigger DAG [options]`. */
export function synopsis(spec: CommandSpec): string {
  const parts = [`tsflow ${spec.name}`, usageArgs(spec)].filter((p) => p !== '');
  if (Object.keys(spec.options).length > 0) parts.push('[options]');
  return parts.join(' ');
}

/** The text `tsflow <command> --help` prints. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [`usage: ${synopsis(spec)}`, '', spec.summary];
  if (spec.details) lines.push('', ...spec.details);
  const entries = Object.entries({ ...spec.options, help: HELP }).map(([name, option]) => {
    const flag = `${name === 'help' ? '-h, ' : ''}--${name}${option.value ? ` ${option.value}` : ''}${option.multiple ? ' ...' : ''}`;
    const text = option.default === undefined ? option.description : `${option.description} (default: ${option.default})`;
    return [flag, text] as const;
  });
  lines.push('', 'options:', ...table(entries));
  return lines.join('\n');
}

/** `tsflow tasks --help`: the subcommands of a group. */
export function groupHelp(group: string, commands: readonly Command[]): string {
  return [
    `usage: tsflow ${group} <command> [options]`,
    '',
    'commands:',
    ...table(commands.filter((c) => !c.spec.hidden).map((c) => [usageLine(c.spec), c.spec.summary] as const)),
    '',
    `tsflow ${group} <command> --help shows a command's options.`,
  ].join('\n');
}

/** `dags trigger DAG` — the name and positionals, as the overview lists a command. */
export function usageLine(spec: CommandSpec): string {
  return [spec.name, usageArgs(spec)].filter((p) => p !== '').join(' ');
}

/** `DAG TASK [LOGICAL_DATE]`. */
function usageArgs(spec: CommandSpec): string {
  return [...(spec.positionals ?? []), ...(spec.optionalPositionals ?? []).map((p) => `[${p}]`)].join(' ');
}

/** Two columns; a first column too wide for the page puts its description on the next line. */
export function table(rows: readonly (readonly [string, string])[], width = columnWidth(rows)): string[] {
  const out: string[] = [];
  for (const [left, right] of rows) {
    if (left.length > width) out.push(`  ${left}`, `  ${' '.repeat(width)}  ${right}`);
    else out.push(`  ${left.padEnd(width)}  ${right}`);
  }
  return out;
}

/** The first column's width for these rows (a very long one goes on a line of its own). */
export function columnWidth(rows: readonly (readonly [string, string])[]): number {
  return Math.min(34, Math.max(0, ...rows.map(([left]) => left.length)));
}
