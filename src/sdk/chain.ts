import type { BaseOperator } from './base-operator.ts';

type Link = BaseOperator | readonly BaseOperator[];

/**
 * `chain(a, b, c)` sets a >> b >> c. A list fans out or in: `chain(a, [b, c], d)` runs b and c after a,
 * and d after both (Airflow's `chain`).
 */
export function chain(...links: Link[]): void {
  for (let i = 1; i < links.length; i++) {
    const previous = links[i - 1] as Link;
    const next = links[i] as Link;
    const froms = Array.isArray(previous) ? previous : [previous as BaseOperator];
    for (const from of froms) from.setDownstream(next);
  }
}
