import { link, type Dependencies } from './dependencies.ts';

/**
 * `chain(a, b, c)` sets a >> b >> c. A list fans out or in: `chain(a, [b, c], d)` runs b and c after a,
 * and d after both (Airflow's `chain`). A task group stands for its roots (as a target) and its
 * leaves (as a source); a TaskFlow task's XComArg for the task.
 */
export function chain(...links: Dependencies[]): void {
  for (let i = 1; i < links.length; i++) link(links[i - 1] as Dependencies, links[i] as Dependencies);
}
