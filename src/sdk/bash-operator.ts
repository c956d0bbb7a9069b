import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { BaseOperator, type BaseOperatorOptions } from './base-operator.ts';
import type { TaskContext } from './context.ts';
import { toDuration, type DurationInput } from './duration.ts';
import { SkipTask } from './errors.ts';

export interface BashOperatorOptions<R = string> extends BaseOperatorOptions {
  /**
   * The command, run with `bash -c`: a template (`'echo {{ ds }}'`, rendered before it runs), or a
   * function of the context that returns the command (not rendered).
   */
  bashCommand: string | ((context: TaskContext) => string | Promise<string>);
  /** The command's environment (its values are templates); replaces the worker's unless `appendEnv`. @default the worker's environment */
  env?: Record<string, string>;
  /** Add `env` to the worker's environment instead of replacing it. @default false */
  appendEnv?: boolean;
  /** The working directory (a template); it must exist. @default a new temporary directory, removed afterwards */
  cwd?: string;
  /** Turns the last line of stdout into the task's return value (its XCom). @default the line itself */
  outputProcessor?: (lastLine: string) => R;
  /** Exit codes that end the task `skipped` instead of failed; `null` for none. @default 99 */
  skipOnExitCode?: number | readonly number[] | null;
  /** After SIGTERM (on executionTimeout or when the task is cleared), wait this long before SIGKILL. @default 5 seconds */
  killGracePeriod?: DurationInput;
}

/**
 * Runs a shell command (Airflow's `BashOperator`): `bash -c <command>` in its own process group, each
 * line of stdout and stderr logged to the task log as it comes, the last line of stdout returned (its
 * XCom). Exit 0 is success, an exit code in `skipOnExitCode` (99) ends the task skipped, any other
 * fails it naming the code. When the task is stopped — its `executionTimeout` passes, or it is
 * cleared while running — the whole process group gets SIGTERM, then SIGKILL after `killGracePeriod`.
 */
export class BashOperator<R = string> extends BaseOperator<R> {
  static override readonly templateFields: readonly string[] = ['bashCommand', 'env', 'cwd'];
  readonly bashCommand: BashOperatorOptions<R>['bashCommand'];
  readonly env: Readonly<Record<string, string>> | undefined;
  readonly appendEnv: boolean;
  readonly cwd: string | undefined;
  readonly skipOnExitCodes: readonly number[];
  readonly #outputProcessor: ((lastLine: string) => R) | undefined;
  readonly #killGraceMs: number;

  constructor(options: BashOperatorOptions<R>) {
    super(options);
    const { taskId } = this;
    if (typeof options.bashCommand !== 'string' && typeof options.bashCommand !== 'function') {
      throw new TypeError(`BashOperator '${taskId}': bashCommand must be a string or a function returning one`);
    }
    if (typeof options.bashCommand === 'string' && options.bashCommand.trim() === '') {
      throw new TypeError(`BashOperator '${taskId}': bashCommand is empty`);
    }
    this.bashCommand = options.bashCommand;
    this.env = options.env ? { ...options.env } : undefined;
    this.appendEnv = options.appendEnv ?? false;
    this.cwd = options.cwd;
    const skip = options.skipOnExitCode === undefined ? [99] : options.skipOnExitCode === null ? [] : typeof options.skipOnExitCode === 'number' ? [options.skipOnExitCode] : [...options.skipOnExitCode];
    for (const code of skip) {
      if (!Number.isInteger(code) || code < 0 || code > 255) throw new RangeError(`BashOperator '${taskId}': skipOnExitCode must hold exit codes 0-255, got ${JSON.stringify(code)}`);
    }
    this.skipOnExitCodes = skip;
    this.#outputProcessor = options.outputProcessor;
    this.#killGraceMs = toDuration(options.killGracePeriod ?? 5, `BashOperator '${taskId}' killGracePeriod`).toMillis();
  }

  override async execute(context: TaskContext): Promise<R> {
    const command = typeof this.bashCommand === 'string' ? this.bashCommand : await this.bashCommand(context);
    if (typeof command !== 'string' || command.trim() === '') {
      throw new TypeError(`BashOperator '${this.taskId}': bashCommand returned ${JSON.stringify(command)}; it must return a non-empty command`);
    }
    const tempDir = this.cwd === undefined ? await mkdtemp(path.join(os.tmpdir(), 'tsflow-bash-')) : undefined;
    try {
      const cwd = tempDir ?? (await this.#checkedCwd());
      context.log.info({ cwd }, `Running command: ${command}`);
      const { code, signal, lastLine } = await this.#run(command, cwd, context);
      if (signal !== null) throw new Error(`Bash command was killed by ${signal}`);
      context.log.info(`Command exited with return code ${code}`);
      if (code !== 0 && this.skipOnExitCodes.includes(code)) throw new SkipTask(`Bash command returned exit code ${code}: skipping the task`);
      if (code !== 0) throw new Error(`Bash command failed: the command returned a non-zero exit code ${code}`);
      return this.#outputProcessor ? this.#outputProcessor(lastLine) : (lastLine as R);
    } finally {
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
    }
  }

  async #checkedCwd(): Promise<string> {
    const cwd = this.cwd as string;
    const info = await stat(cwd).catch(() => undefined);
    if (!info) throw new Error(`BashOperator '${this.taskId}': cwd '${cwd}' does not exist; create it or give another directory`);
    if (!info.isDirectory()) throw new Error(`BashOperator '${this.taskId}': cwd '${cwd}' is not a directory`);
    return cwd;
  }

  #environment(context: TaskContext): NodeJS.ProcessEnv {
    const base = this.env === undefined ? { ...process.env } : this.appendEnv ? { ...process.env, ...this.env } : { ...this.env };
    return {
      ...base,
      TSFLOW_CTX_DAG_ID: context.dagId,
      TSFLOW_CTX_TASK_ID: context.taskId,
      TSFLOW_CTX_RUN_ID: context.runId,
      TSFLOW_CTX_TRY_NUMBER: String(context.tryNumber),
      TSFLOW_CTX_LOGICAL_DATE: context.ts,
    };
  }

  /** Runs the command to its exit, logging its output; kills its process group if the task is stopped. */
  #run(command: string, cwd: string, context: TaskContext): Promise<{ code: number; signal: NodeJS.Signals | null; lastLine: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', command], { cwd, env: this.#environment(context), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let lastLine = '';
      let killTimer: NodeJS.Timeout | undefined;
      const stop = (): void => {
        context.log.warn('the task was stopped: sending SIGTERM to the command\'s process group');
        killGroup(child, 'SIGTERM');
        killTimer = setTimeout(() => killGroup(child, 'SIGKILL'), this.#killGraceMs);
        killTimer.unref();
      };
      if (context.signal.aborted) stop();
      else context.signal.addEventListener('abort', stop, { once: true });
      const out = createInterface({ input: child.stdout as NodeJS.ReadableStream, crlfDelay: Infinity });
      out.on('line', (line) => {
        lastLine = line;
        context.log.info(line);
      });
      const err = createInterface({ input: child.stderr as NodeJS.ReadableStream, crlfDelay: Infinity });
      err.on('line', (line) => context.log.info(line));
      child.once('error', (error) => {
        context.signal.removeEventListener('abort', stop);
        reject(new Error(`BashOperator '${this.taskId}' could not start bash: ${error.message}`, { cause: error }));
      });
      // 'close' waits for both streams to end: a background process that keeps them open is waited for too.
      child.once('close', (code, signal) => {
        context.signal.removeEventListener('abort', stop);
        if (killTimer) clearTimeout(killTimer);
        if (context.signal.aborted) reject(context.signal.reason ?? new Error('the task was stopped'));
        else resolve({ code: code ?? -1, signal, lastLine });
      });
    });
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}
