import type { Logger } from 'pino';
import type { TaskInstanceKey } from '../db/schema.ts';
import { tiKeyString } from '../db/schema.ts';
import type { TriggerLogger } from '../sdk/trigger.ts';

/**
 * A trigger's logger, with its trigger id, task and classpath bound — created only when the trigger
 * first logs. A triggerer holds 100,000 triggers; a pino child for each would cost more memory than
 * the triggers themselves.
 */
export class TriggerLog implements TriggerLogger {
  readonly #parent: Logger;
  readonly #triggerId: number;
  readonly #task: TaskInstanceKey | undefined;
  readonly #classpath: string;
  #child: Logger | undefined;

  constructor(parent: Logger, triggerId: number, task: TaskInstanceKey | undefined, classpath: string) {
    this.#parent = parent;
    this.#triggerId = triggerId;
    this.#task = task;
    this.#classpath = classpath;
  }

  get logger(): Logger {
    this.#child ??= this.#parent.child({ triggerId: this.#triggerId, task: this.#task ? tiKeyString(this.#task) : null, classpath: this.#classpath });
    return this.#child;
  }

  debug(fields: object, message: string): void {
    if (this.#parent.isLevelEnabled('debug')) this.logger.debug(fields, message);
  }

  info(fields: object, message: string): void {
    if (this.#parent.isLevelEnabled('info')) this.logger.info(fields, message);
  }

  warn(fields: object, message: string): void {
    if (this.#parent.isLevelEnabled('warn')) this.logger.warn(fields, message);
  }
}
