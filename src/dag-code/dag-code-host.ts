import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { TSFLOW_ENTRY } from '../executors/local-executor.ts';
import type { BuiltStartDeferral, NextRunRequest, PlannedRun, StartTriggerBuilder, StartTriggerRequest } from '../scheduler/start-from-trigger.ts';
import { isFromDagCode, type ToDagCode } from './protocol.ts';

export interface DagCodeHostOptions {
  /** The DAG folder (files outside it are refused by the child). */
  dagsFolder: string;
  logger: Logger;
  /** A request that takes longer kills the child (the DAG file hangs); the next request starts a new one. @default 30 s */
  requestTimeoutMs?: number;
  entry?: string;
}

type Answer = BuiltStartDeferral | PlannedRun | undefined;

interface Pending {
  resolve: (value: Answer) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Runs DAG code the scheduler needs — building `startFromTrigger` sensors' triggers and asking
 * custom timetables for their next run — in a
 * child process, so a DAG file's code never runs in the scheduler's process: a file that throws,
 * hangs or crashes costs a request (the task then starts on a worker), never the scheduler. The
 * child is started on the first request and replaced when it dies or a request times out.
 */
export class DagCodeHost implements StartTriggerBuilder {
  readonly #options: DagCodeHostOptions;
  readonly #pending = new Map<number, Pending>();
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #nextId = 1;
  #closed = false;

  constructor(options: DagCodeHostOptions) {
    this.#options = options;
  }

  build(request: StartTriggerRequest, log: Logger): Promise<BuiltStartDeferral | undefined> {
    return this.#ask({ type: 'start-deferral', request }, log) as Promise<BuiltStartDeferral | undefined>;
  }

  nextRun(request: NextRunRequest): Promise<PlannedRun | undefined> {
    return this.#ask({ type: 'next-run', request }, this.#options.logger) as Promise<PlannedRun | undefined>;
  }

  async #ask(message: Omit<ToDagCode, 'id'>, log: Logger): Promise<Answer> {
    try {
      return await this.#request(message, log);
    } catch (error) {
      if (!(error instanceof StaleHostError)) throw error;
      await this.#restart();
      return this.#request(message, log);
    }
  }

  async #restart(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.#exited;
  }

  #request(question: Omit<ToDagCode, 'id'>, log: Logger): Promise<Answer> {
    if (this.#closed) return Promise.reject(new Error('the DAG code host is closed'));
    const child = this.#spawn();
    const id = this.#nextId++;
    const timeoutMs = this.#options.requestTimeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the DAG code took longer than ${timeoutMs / 1000} s to answer (the DAG file hangs?); its process was killed`));
        log.error({ fileloc: question.request.fileloc }, 'DAG code host timed out; killing it');
        child.kill('SIGKILL');
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      const message = { ...question, id } as ToDagCode;
      child.send(message, (error) => {
        if (!error) return;
        const pending = this.#pending.get(id);
        if (!pending) return;
        this.#pending.delete(id);
        clearTimeout(pending.timer);
        pending.reject(new Error(`could not reach the DAG code host: ${error.message}`));
      });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const child = this.#child;
    if (!child) return;
    if (child.connected) child.disconnect();
    const killer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await this.#exited;
    clearTimeout(killer);
  }

  #spawn(): ChildProcess {
    if (this.#child) return this.#child;
    const child = fork(this.#options.entry ?? TSFLOW_ENTRY, ['dag-code-host', '--dags-folder', this.#options.dagsFolder], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: [],
      serialization: 'json',
    });
    this.#child = child;
    child.on('message', (message) => {
      if (!isFromDagCode(message)) return;
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.result ?? undefined);
      else if ('stale' in message) pending.reject(new StaleHostError());
      else pending.reject(new Error(message.error));
    });
    child.on('error', (error) => this.#options.logger.warn({ err: error }, 'DAG code host error'));
    this.#exited = new Promise((resolve) => {
      // 'exit', not 'close': after the parent disconnects, Node never emits 'close' for an IPC-only child.
      child.once('exit', (code, signal) => {
        if (this.#child === child) this.#child = undefined;
        for (const [id, pending] of this.#pending) {
          this.#pending.delete(id);
          clearTimeout(pending.timer);
          pending.reject(new Error(`the DAG code host exited (${signal ?? `code ${code}`}) before it answered`));
        }
        resolve();
      });
    });
    return child;
  }
}

class StaleHostError extends Error {
  override name = 'StaleHostError';
}
