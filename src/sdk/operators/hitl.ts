import { HITLTrigger } from '../../../triggers/hitl-trigger.ts';
import { BaseOperator, FAIL_METHOD, type BaseOperatorOptions } from '../base-operator.ts';
import type { TaskContext } from '../context.ts';
import { toDuration, type DurationInput } from '../duration.ts';
import { SkipDownstreamTasks } from '../errors.ts';
import { checkAnswer, HitlTimeoutError, InvalidHitlAnswerError, type HitlAnswer, type HitlRequest } from '../hitl.ts';
import { toJsonObject, type JsonObject } from '../json.ts';
import { allDownstream } from './skip-downstream.ts';

export interface HITLOperatorOptions extends BaseOperatorOptions {
  /** The question, shown in the list of required actions; a template (`'Publish {{ ds }}?'`). */
  subject: string;
  /** Markdown shown under the subject; a template. @default none */
  body?: string;
  /** What the person may choose: non-empty, distinct. */
  options: readonly string[];
  /** Form fields the person may fill: name → default value; an answer's value must have the default's JSON type. @default {} */
  params?: JsonObject;
  /** The tsflow users (API usernames) who may answer; admins always may. @default [] (any operator) */
  assignees?: readonly string[];
  /** Nobody answered by then (or by the task's `executionTimeout`) → the `defaults` are taken, or without them the task fails. @default no timeout */
  timeout?: DurationInput;
  /** The answer taken at the timeout: options among `options`, one unless `multiple`. @default none */
  defaults?: string | readonly string[];
  /** Whether several options may be chosen. @default false */
  multiple?: boolean;
}

/**
 * Asks a person to choose (Airflow 3.1's `HITLOperator`): stores the request, then defers until
 * someone answers with `tsflow hitl respond`, `PATCH /api/v1/hitlDetails/…` or the Required actions
 * page. The task's return value (XCom) is the answer `{ chosenOptions, paramsInput, respondedBy,
 * respondedAt, timedOut }`. At the `timeout` it takes the `defaults` (respondedBy null, timedOut
 * true), or fails with `HitlTimeoutError` when there are none (retries apply, and ask again).
 */
export class HITLOperator extends BaseOperator<HitlAnswer> {
  static override readonly templateFields: readonly string[] = ['subject', 'body'];
  subject: string;
  body: string | undefined;
  readonly options: readonly string[];
  readonly params: JsonObject;
  readonly assignees: readonly string[];
  readonly timeout: DurationInput | undefined;
  readonly defaults: readonly string[] | null;
  readonly multiple: boolean;

  constructor(options: HITLOperatorOptions) {
    const { subject, body, options: choices, params, assignees, timeout, defaults, multiple, ...rest } = options;
    super(rest);
    const owner = `${new.target.name} '${options.taskId}'`;
    if (typeof subject !== 'string' || subject.trim() === '') throw new TypeError(`${owner}: subject must be a non-empty string, got ${JSON.stringify(subject)}`);
    if (body !== undefined && typeof body !== 'string') throw new TypeError(`${owner}: body must be a string (Markdown), got ${typeof body}`);
    if (!Array.isArray(choices) || choices.length === 0 || choices.some((o) => typeof o !== 'string' || o === '')) {
      throw new TypeError(`${owner}: options must be a non-empty list of non-empty strings, got ${JSON.stringify(choices)}`);
    }
    if (new Set(choices).size !== choices.length) throw new TypeError(`${owner}: options must be distinct, got ${JSON.stringify(choices)}`);
    if (assignees !== undefined && (!Array.isArray(assignees) || assignees.some((a) => typeof a !== 'string' || a === ''))) {
      throw new TypeError(`${owner}: assignees must be a list of usernames, got ${JSON.stringify(assignees)}`);
    }
    this.subject = subject;
    this.body = body;
    this.options = [...choices];
    this.params = toJsonObject(params ?? {}, `${owner} params`);
    this.assignees = [...(assignees ?? [])];
    this.multiple = multiple ?? false;
    if (timeout !== undefined) toDuration(timeout, `${owner} timeout`);
    this.timeout = timeout;
    if (defaults === undefined) this.defaults = null;
    else {
      const list = typeof defaults === 'string' ? [defaults] : [...defaults];
      try {
        this.defaults = checkAnswer(this.request(), list, {}).chosenOptions;
      } catch (error) {
        if (error instanceof InvalidHitlAnswerError) throw new TypeError(`${owner}: defaults: ${error.message}`, { cause: error });
        throw error;
      }
    }
  }

  /** The request as stored (subject and body rendered by the time `execute` runs). */
  request(): HitlRequest {
    return {
      subject: this.subject,
      body: this.body ?? null,
      options: this.options,
      params: this.params,
      assignees: this.assignees,
      defaults: this.defaults ?? null,
      multiple: this.multiple,
    };
  }

  override async execute(context: TaskContext): Promise<HitlAnswer> {
    if (!context.hitl) throw new Error(`HITL task '${this.taskId}' needs a DAG run to store its request in (tsflow tasks test has none): trigger the DAG instead`);
    const { eventKey, createdAtMs } = await context.hitl.request(this.request());
    context.log.info({ eventKey, assignees: this.assignees, timeout: this.timeout ?? null }, 'waiting for a human to answer');
    this.defer({
      trigger: new HITLTrigger({ eventKey, notBefore: new Date(createdAtMs).toISOString() }),
      method: 'executeComplete',
      ...(this.timeout !== undefined && { timeout: this.timeout }),
    });
  }

  /** A deferral timeout becomes the defaults (or `HitlTimeoutError`); anything else resumes as usual. */
  override resumeExecution(context: TaskContext, method: string, nextKwargs: JsonObject): unknown {
    if (method === FAIL_METHOD && nextKwargs['timeout'] === true) return this.#timedOut(context);
    return super.resumeExecution(context, method, nextKwargs);
  }

  /** Resumed by the answer: reads the stored answer, checks it again, and hands it to `onAnswer`. */
  async executeComplete(context: TaskContext): Promise<HitlAnswer> {
    const answer = await context.hitl?.answer();
    if (!answer) {
      throw new Error(`HITL task '${this.taskId}' resumed without an answer to '${this.subject}' (was its wait fired by hand?): answer with tsflow hitl respond before resuming it`);
    }
    return this.#accept(context, answer);
  }

  /** What the task does with the answer: the base returns it (its XCom); subclasses branch or skip. */
  protected onAnswer(_context: TaskContext, answer: HitlAnswer): HitlAnswer | Promise<HitlAnswer> {
    return answer;
  }

  async #timedOut(context: TaskContext): Promise<HitlAnswer> {
    const hitl = context.hitl;
    if (!hitl) throw new Error(`HITL task '${this.taskId}' needs the database to read its answer`);
    // A person may have answered in the last moment, before the timeout was handled: that answer stands.
    const answer = this.defaults === null ? await hitl.answer() : await hitl.takeDefaults();
    if (!answer) {
      throw new HitlTimeoutError(`HITL task '${this.taskId}': nobody answered '${this.subject}' within ${this.#timeoutText()} and it has no defaults`);
    }
    context.log.info({ chosenOptions: answer.chosenOptions, timedOut: answer.timedOut }, answer.timedOut ? 'timed out: took the defaults' : 'answered');
    return this.#accept(context, answer);
  }

  #timeoutText(): string {
    return this.timeout === undefined ? 'its timeout' : toDuration(this.timeout, 'timeout').rescale().toHuman({ unitDisplay: 'short' });
  }

  async #accept(context: TaskContext, answer: HitlAnswer): Promise<HitlAnswer> {
    try {
      checkAnswer(this.request(), answer.chosenOptions, answer.paramsInput);
    } catch (error) {
      throw new Error(`HITL task '${this.taskId}': the stored answer does not fit the request: ${(error as Error).message}`, { cause: error });
    }
    context.log.info({ chosenOptions: answer.chosenOptions, respondedBy: answer.respondedBy }, 'human answered');
    return this.onAnswer(context, answer);
  }
}

export const APPROVE = 'Approve';
export const REJECT = 'Reject';

export interface ApprovalOperatorOptions extends Omit<HITLOperatorOptions, 'options' | 'multiple' | 'defaults'> {
  /** The answer taken at the timeout. @default none (a timeout fails the task) */
  defaults?: typeof APPROVE | typeof REJECT;
  /** On Reject, skip every task downstream (true) or only the direct ones, later tasks following their trigger rules (false). @default false */
  ignoreDownstreamTriggerRules?: boolean;
  /** On Reject, fail the task instead of skipping downstream. @default false */
  failOnReject?: boolean;
}

/**
 * Approve or Reject (Airflow's `ApprovalOperator`): Approve → the task succeeds and downstream runs;
 * Reject → the task succeeds (with the answer as its XCom) and its downstream tasks are skipped, or
 * it fails with `failOnReject`.
 */
export class ApprovalOperator extends HITLOperator {
  readonly ignoreDownstreamTriggerRules: boolean;
  readonly failOnReject: boolean;

  constructor(options: ApprovalOperatorOptions) {
    const { ignoreDownstreamTriggerRules, failOnReject, ...rest } = options;
    super({ ...rest, options: [APPROVE, REJECT], multiple: false });
    this.ignoreDownstreamTriggerRules = ignoreDownstreamTriggerRules ?? false;
    this.failOnReject = failOnReject ?? false;
  }

  protected override onAnswer(context: TaskContext, answer: HitlAnswer): HitlAnswer {
    if (!answer.chosenOptions.includes(REJECT)) return answer;
    const by = answer.timedOut ? 'by default at the timeout' : `by ${answer.respondedBy ?? '?'}`;
    if (this.failOnReject) throw new Error(`'${this.subject}' was rejected ${by}`);
    const skipped = this.ignoreDownstreamTriggerRules ? [...allDownstream(this)].sort() : [...this.downstreamTaskIds].sort();
    context.log.info({ skipped, respondedBy: answer.respondedBy }, `rejected ${by}: skipping downstream tasks`);
    throw new SkipDownstreamTasks(skipped, answer);
  }
}
