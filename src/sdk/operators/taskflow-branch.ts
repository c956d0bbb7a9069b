import type { TaskDefaults } from '../base-operator.ts';
import type { TaskContext } from '../context.ts';
import type { Dag } from '../dag.ts';
import { findXComArgs, resolveXComArgs } from '../xcom-arg.ts';
import { BranchOperator, type BranchChoice } from './branch.ts';

export interface TaskBranchOptions extends TaskDefaults {
  /** @default the function's name; a second call in the same DAG (or group) gets `name__1`, `name__2`, … */
  taskId?: string;
  /** The DAG to join; by default the one whose `dag()` callback is running. */
  dag?: Dag;
}

export type BranchBody<A extends unknown[]> = (context: TaskContext, ...args: A) => BranchChoice | Promise<BranchChoice>;

/**
 * The operator behind `task.branch` (Airflow's `@task.branch`): resolves its XComArg arguments, calls
 * the function, and follows the task ids (or task group ids) it returns as a BranchOperator does.
 */
export class TaskFlowBranchOperator<A extends unknown[] = unknown[]> extends BranchOperator {
  /** The arguments' strings are templates, as a TaskFlow task's; XComArg values are not rendered. */
  static override readonly templateFields: readonly string[] = ['opArgs'];
  readonly opArgs: readonly unknown[];
  readonly #fn: BranchBody<A>;

  constructor(options: TaskBranchOptions & { taskId: string }, fn: BranchBody<A>, args: readonly unknown[]) {
    super(options);
    this.#fn = fn;
    this.opArgs = args;
    for (const arg of findXComArgs(args)) arg.operator.setDownstream(this);
  }

  override async chooseBranch(context: TaskContext): Promise<BranchChoice> {
    const args = (await resolveXComArgs(this.opArgs, context)) as A;
    return this.#fn(context, ...args);
  }
}
