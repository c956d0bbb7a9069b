import { BaseOperator, type BaseOperatorOptions } from '../base-operator.ts';
import type { TaskContext } from '../context.ts';
import { SkipDownstreamTasks } from '../errors.ts';
import { findTaskGroup } from '../task-group.ts';
import { notFollowed } from './skip-downstream.ts';

/**
 * What a branch follows: one task id (or task group id: its roots), several, or none (`null`: every
 * direct downstream is skipped).
 */
export type BranchChoice = string | readonly string[] | null | undefined;

export interface BranchOperatorOptions extends BaseOperatorOptions {
  /** Picks the branch; or subclass `BranchOperator` and override `chooseBranch`. */
  chooseBranch?: (context: TaskContext) => BranchChoice | Promise<BranchChoice>;
}

/**
 * Follows the task ids `chooseBranch(context)` returns and skips every other direct downstream task
 * (Airflow's `BaseBranchOperator` / `BranchPythonOperator`), unless it is also downstream of a
 * followed task. A task group's id follows the group's roots. The skips are written with the branch's
 * success, in one statement; the followed task ids are its return value. An id that is neither a task
 * nor a task group of the DAG fails the task.
 */
export class BranchOperator extends BaseOperator<string[]> {
  readonly #choose: BranchOperatorOptions['chooseBranch'];

  constructor(options: BranchOperatorOptions) {
    const { chooseBranch, ...rest } = options;
    super(rest);
    this.#choose = chooseBranch;
  }

  chooseBranch(context: TaskContext): BranchChoice | Promise<BranchChoice> {
    if (!this.#choose) throw new TypeError(`branch task '${this.taskId}' has no chooseBranch: pass the option or override the method`);
    return this.#choose(context);
  }

  override async execute(context: TaskContext): Promise<string[]> {
    const followed = this.#validate(await this.chooseBranch(context));
    const skipped = notFollowed(this, followed);
    context.log.info({ followed, skipped }, 'branch chosen');
    throw new SkipDownstreamTasks(skipped, followed);
  }

  #validate(choice: BranchChoice): string[] {
    const ids = choice === null || choice === undefined ? [] : typeof choice === 'string' ? [choice] : [...choice];
    const notString = ids.filter((id) => typeof id !== 'string');
    if (notString.length > 0) {
      throw new TypeError(`branch task '${this.taskId}' must return task ids (strings); got ${JSON.stringify(notString)}`);
    }
    const unknown = ids.filter((id) => !this.dag.tasks.has(id) && !findTaskGroup(this.dag, id));
    if (unknown.length > 0) {
      throw new TypeError(`branch task '${this.taskId}' returned ids that are neither tasks nor task groups of DAG '${this.dag.dagId}': ${unknown.join(', ')}`);
    }
    // A task group's id follows the group's roots (Airflow expands it the same way).
    const followed = ids.flatMap((id) => [
      ...(this.dag.tasks.has(id) ? [id] : []),
      ...(findTaskGroup(this.dag, id)?.roots.map((root) => root.taskId) ?? []),
    ]);
    return [...new Set(followed)];
  }
}
