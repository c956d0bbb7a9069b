/**
 * The human-in-the-loop routes and the least role each admits (the OpenAPI test of api-routes lists
 * them too; test/hitl.test.ts checks them, since answering needs a pending request). PATCH admits
 * viewers: whether this user may answer is decided per request (assignee or admin), 403 otherwise.
 */
export const HITL_ROUTES: readonly (readonly [string, string, 'viewer' | 'operator'])[] = [
  ['GET', '/api/v1/hitlDetails', 'viewer'],
  ['PATCH', '/api/v1/hitlDetails/{dag_id}/{dag_run_id}/{task_id}', 'viewer'],
];
