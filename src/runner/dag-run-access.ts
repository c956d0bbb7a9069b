import { describeDag, readExternalStates, triggerDagRun } from '../db/cross-dag.ts';
import type { Db } from '../db/database.ts';
import type { DagRunAccess } from '../sdk/cross-dag.ts';

/** `context.dagRuns` on a worker: the database functions the CLI and the API use. */
export function dagRunAccess(db: Db): DagRunAccess {
  return {
    trigger: (request) => triggerDagRun(db, request),
    states: (query) => readExternalStates(db, [query]),
    describeDag: (dagId) => describeDag(db, dagId),
  };
}

/** `context.dagRuns` where there is no database (`tsflow tasks test`): every call says so. */
export function noDagRunAccess(): DagRunAccess {
  const refuse = (what: string) => async (): Promise<never> => {
    throw new Error(`${what} needs the database, which tsflow tasks test does not open: run the task with tsflow dags test or through a scheduler`);
  };
  return { trigger: refuse('triggering another DAG'), states: refuse("reading another DAG's runs"), describeDag: refuse('checking another DAG') };
}
