import { expect } from 'chai';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sinon from 'sinon';
import { COMMANDS, main } from '../src/cli/main.ts';
import { parseCommandArgs } from '../src/cli/usage.ts';
import { tsflow } from './support/cli.ts';

/** Runs `main` in this process, collecting what it prints. */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = sinon.stub(console, 'log').callsFake((...a: unknown[]) => void out.push(a.join(' ')));
  const error = sinon.stub(console, 'error').callsFake((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await main(argv);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.restore();
    error.restore();
  }
}

const visible = COMMANDS.filter((c) => !c.spec.hidden);
const groups = [...new Set(COMMANDS.map((c) => c.spec.name.split(' ')).filter((w) => w.length > 1).map((w) => w[0] as string))];

describe('tsflow --help', () => {
  for (const command of COMMANDS) {
    const words = command.spec.name.split(' ');
    it(`tsflow ${command.spec.name} --help / -h lists every option with its description and default`, async () => {
      for (const flag of ['--help', '-h']) {
        const result = await run([...words, flag]);
        expect(result.code, result.stderr).to.equal(0);
        expect(result.stdout).to.contain(`usage: tsflow ${command.spec.name}`).and.contain(command.spec.summary);
        for (const [name, option] of Object.entries(command.spec.options)) {
          const line = result.stdout.split('\n').find((l) => l.trimStart().startsWith(`--${name}`));
          expect(line, `--${name} in the help of ${command.spec.name}`).to.be.a('string');
          expect(line).to.contain(option.description);
          if (option.default !== undefined) expect(line).to.contain(`(default: ${option.default})`);
        }
        expect(result.stdout).to.contain('-h, --help');
      }
    });

    it(`tsflow ${command.spec.name}: the parser accepts exactly the options the help lists`, () => {
      for (const [name, option] of Object.entries(command.spec.options)) {
        const argv = option.type === 'boolean' ? [`--${name}`] : [`--${name}`, '1'];
        const parsed = parseCommandArgs(command.spec, [...argv, ...(command.spec.positionals ?? [])]);
        expect(parsed).not.to.equal('help');
        expect((parsed as { values: Record<string, unknown> }).values[name]).to.deep.equal(option.type === 'boolean' ? true : option.multiple ? ['1'] : '1');
      }
      expect(() => parseCommandArgs(command.spec, ['--no-such-option', ...(command.spec.positionals ?? [])])).to.throw(/Unknown option '--no-such-option'/);
    });
  }

  for (const group of groups) {
    it(`tsflow ${group} --help lists its subcommands`, async () => {
      const result = await run([group, '--help']);
      expect(result.code).to.equal(0);
      for (const command of visible.filter((c) => c.spec.name.startsWith(`${group} `))) {
        expect(result.stdout).to.contain(command.spec.name).and.contain(command.spec.summary);
      }
    });
  }

  it('tsflow help, --help and -h show the overview with every command but the hidden task-worker', async () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const result = await run(argv);
      expect(result.code).to.equal(0);
      for (const command of visible) expect(result.stdout).to.contain(command.spec.name);
      expect(result.stdout).not.to.match(/^\s+task-worker\b/m);
      expect(result.stdout).to.match(/^\s+worker\b/m);
    }
    expect((await run(['help', 'dags', 'trigger'])).stdout).to.contain('usage: tsflow dags trigger DAG [options]');
    expect((await run(['help', 'tasks'])).stdout).to.contain('tasks clear DAG RUN_ID');
  });

  it('a group without its subcommand is a usage error naming the choices', async () => {
    const result = await run(['tasks']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.contain('tsflow tasks needs one of: run, states, logs, clear, test, render (got nothing)');
  });

  it('--help works from the real command, whatever the environment holds', async () => {
    const result = await tsflow(['dags', 'trigger', '--help'], { TSFLOW_DATABASE_URL: 'mysql://nowhere', TSFLOW_LOG_LEVEL: 'loud' });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.contain('--wait').and.contain('--run-id ID');
  });

  it('every "tsflow …" hint in the sources names a command that exists', async () => {
    const src = fileURLToPath(new URL('../src/', import.meta.url));
    const names = new Set([...COMMANDS.map((c) => c.spec.name), ...groups, 'help', 'version']);
    const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith('.ts'));
    const hints: string[] = [];
    const wrong: string[] = [];
    /** Prose, not a command: "run tsflow as a normal user". */
    const prose = new Set(['as']);
    for (const file of files) {
      const text = await readFile(path.join(src, file), 'utf8');
      // What a message tells the user to run: "run tsflow db migrate", "(tsflow tasks clear …)", "`tsflow db stop`".
      for (const match of text.matchAll(/(?:run |with |use |[(`])tsflow ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?/g)) {
        const [, first, second] = match as unknown as [string, string, string | undefined];
        if (prose.has(first)) continue;
        const name = second !== undefined && names.has(`${first} ${second}`) ? `${first} ${second}` : first;
        hints.push(name);
        // A group ("tsflow tasks") must be followed by one of its commands, or by nothing.
        const exists = names.has(name) && (!groups.includes(name) || second === undefined);
        if (!exists) wrong.push(`${file}: ${match[0]}`);
      }
    }
    expect(wrong).to.deep.equal([]);
    expect(hints.length).to.be.greaterThan(10);
  });
});
