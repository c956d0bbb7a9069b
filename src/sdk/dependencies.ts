import type { BaseOperator } from './base-operator.ts';

/**
 * Anything a dependency can start or end at: a task, a task group (its roots or leaves), or a
 * TaskFlow task's XComArg (the task that produces it).
 */
export interface DependencyNode {
  /** The tasks an upstream dependency on this node reaches: a group's roots. */
  dependencyRoots(): readonly BaseOperator[];
  /** The tasks a downstream dependency from this node starts at: a group's leaves. */
  dependencyLeaves(): readonly BaseOperator[];
}

export type DependencyTarget = BaseOperator | DependencyNode;
export type Dependencies = DependencyTarget | readonly DependencyTarget[];

function isNode(value: DependencyTarget): value is DependencyNode {
  return typeof (value as Partial<DependencyNode>).dependencyRoots === 'function';
}

function list(targets: Dependencies): readonly DependencyTarget[] {
  return Array.isArray(targets) ? targets : [targets as DependencyTarget];
}

/** The tasks a dependency pointing at `targets` lands on. */
export function rootsOf(targets: Dependencies): BaseOperator[] {
  return list(targets).flatMap((t) => (isNode(t) ? t.dependencyRoots() : [t]));
}

/** The tasks a dependency leaving `targets` starts from. */
export function leavesOf(targets: Dependencies): BaseOperator[] {
  return list(targets).flatMap((t) => (isNode(t) ? t.dependencyLeaves() : [t]));
}

/** `from >> to`: every leaf of `from` runs before every root of `to`. */
export function link(from: Dependencies, to: Dependencies): void {
  const roots = rootsOf(to);
  for (const leaf of leavesOf(from)) leaf.setDownstream(roots);
}
