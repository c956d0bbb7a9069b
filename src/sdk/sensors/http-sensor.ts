import { HttpPollTrigger, type HttpPollTriggerKwargs } from '../../../triggers/http-poll-trigger.ts';
import type { TaskContext } from '../context.ts';
import { BaseSensorOperator, checkTriggerOptions, type BaseSensorOptions, type PokeResult } from './base-sensor.ts';

export interface HttpSensorOptions extends BaseSensorOptions, Omit<HttpPollTriggerKwargs, 'pollInterval'> {}

/**
 * Waits until an HTTP endpoint answers as `expect` says (Airflow's `HttpSensor`, with a declarative
 * condition instead of a `response_check` callable, so the same condition runs in the triggerer).
 * Each poke is one request; transient failures (network errors, timeouts, 5xx, 408, 429) and
 * `expect.keepPollingOn` statuses (404 by default) mean "not yet", any other 4xx fails the task.
 * Its result (and XCom) is `{ status, headers, body, bodyTruncated }`.
 *
 * With `httpConnId` the base URL, Basic auth and headers come from a connection, resolved where the
 * wait runs (the worker when poking, the triggerer when deferred): the trigger row stores only the
 * id. A URL with credentials (`user:pass@`) is refused when the DAG is built.
 * The task log shows the URL as `scheme://host:port/path`, never its query string.
 */
export class HttpSensor extends BaseSensorOperator {
  readonly #kwargs: HttpPollTriggerKwargs;

  constructor(options: HttpSensorOptions) {
    super(options);
    const { url, httpConnId, endpoint, method, headers, body, requestTimeout, expect, responseHeaders } = options;
    this.#kwargs = {
      ...(httpConnId === undefined ? { url } : { httpConnId, ...(endpoint === undefined ? {} : { endpoint }) }),
      method,
      headers,
      body,
      requestTimeout,
      expect,
      responseHeaders,
      pollInterval: this.pokeInterval.toMillis() > 0 ? this.pokeInterval : 5,
    };
    if (httpConnId === undefined && endpoint !== undefined) this.#kwargs.endpoint = endpoint; // refused by the trigger, with its message
    checkTriggerOptions(options.taskId, () => this.trigger());
  }

  override async poke(context: TaskContext): Promise<PokeResult> {
    const trigger = this.trigger().useLogger(context.log);
    await trigger.resolveConnection((connId) => context.getConnection(connId));
    const poll = await trigger.poll(context.signal);
    if (poll.done) return { done: true, value: poll.payload };
    context.log.info({ url: trigger.safeUrl, status: poll.status, reason: poll.reason }, 'endpoint not ready');
    return false;
  }

  override trigger(): HttpPollTrigger {
    return new HttpPollTrigger(this.#kwargs);
  }
}
