import { BaseOperator, type BaseOperatorOptions } from '../base-operator.ts';
import type { TaskContext } from '../context.ts';
import { SkipDownstreamTasks } from '../errors.ts';
import { allDownstream } from './skip-downstream.ts';

export interface ShortCircuitOperatorOptions extends BaseOperatorOptions {
  /** The condition; or subclass and override `condition`. Its value is the task's return value. */
  condition?: (context: TaskContext) => unknown;
  /**
   * On a falsy condition, skip every task downstream (true) or only the direct ones, the later
   * tasks then following their own trigger rules (false). @default true
   */
  ignoreDownstreamTriggerRules?: boolean;
}

/**
 * Continues when `condition(context)` is truthy; when it is falsy, skips downstream tasks (Airflow's
 * `ShortCircuitOperator`), written with this task's success in one statement.
 */
export class ShortCircuitOperator extends BaseOperator {
  readonly ignoreDownstreamTriggerRules: boolean;
  readonly #condition: ShortCircuitOperatorOptions['condition'];

  constructor(options: ShortCircuitOperatorOptions) {
    const { condition, ignoreDownstreamTriggerRules, ...rest } = options;
    super(rest);
    this.#condition = condition;
    this.ignoreDownstreamTriggerRules = ignoreDownstreamTriggerRules ?? true;
  }

  condition(context: TaskContext): unknown {
    if (!this.#condition) throw new TypeError(`short-circuit task '${this.taskId}' has no condition: pass the option or override the method`);
    return this.#condition(context);
  }

  override async execute(context: TaskContext): Promise<unknown> {
    const value: unknown = await this.condition(context);
    if (value) return value;
    const skipped = this.ignoreDownstreamTriggerRules ? [...allDownstream(this)].sort() : [...this.downstreamTaskIds].sort();
    context.log.info({ condition: value, skipped }, 'condition is falsy: skipping downstream tasks');
    throw new SkipDownstreamTasks(skipped, value);
  }
}
