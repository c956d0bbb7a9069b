import { expect } from 'chai';
import { Ajv } from 'ajv';
import { createDagRun } from '../src/db/dag-runs.ts';
import { setXcom } from '../src/db/xcom.ts';
import { createTaskInstances } from '../src/db/task-instances.ts';
import { hashPassword } from '../src/api/credentials.ts';
import { createUser } from '../src/db/api-users.ts';
import { setPool } from '../src/db/pools.ts';
import { call, PASSWORD, recordApiDags, startApi, type ApiRig } from './support/api.ts';
import { TRIGGER_ROUTES } from './support/trigger-routes.ts';
import { HITL_ROUTES } from './support/hitl-routes.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

type Need = 'public' | 'viewer' | 'operator' | 'admin';

/**
 * Every route and the least role it needs: the security model as a table. The OpenAPI test below
 * checks this table and the served document list the same routes, so a new route must be added
 * here, with its role, to pass.
 */
const ROUTES: readonly (readonly [string, string, Need])[] = [
  ['GET', '/api/v1/health', 'public'],
  ['POST', '/api/v1/auth/login', 'public'],
  ['POST', '/api/v1/auth/logout', 'viewer'],
  ['GET', '/api/v1/auth/me', 'viewer'],
  ['GET', '/api/v1/dags', 'viewer'],
  ['GET', '/api/v1/dags/{dag_id}', 'viewer'],
  ['PATCH', '/api/v1/dags/{dag_id}', 'operator'],
  ['GET', '/api/v1/dags/{dag_id}/dagRuns', 'viewer'],
  ['POST', '/api/v1/dags/{dag_id}/dagRuns', 'operator'],
  ['GET', '/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}', 'viewer'],
  ['GET', '/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances', 'viewer'],
  ['GET', '/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}', 'viewer'],
  ['PATCH', '/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}', 'operator'],
  ['POST', '/api/v1/dags/{dag_id}/clearTaskInstances', 'operator'],
  ['GET', '/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}', 'viewer'],
  ['GET', '/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries', 'viewer'],
  ['GET', '/api/v1/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}', 'viewer'],
  ['GET', '/api/v1/pools', 'viewer'],
  ['GET', '/api/v1/pools/{pool_name}', 'viewer'],
  ['POST', '/api/v1/pools', 'admin'],
  ['PATCH', '/api/v1/pools/{pool_name}', 'admin'],
  ['DELETE', '/api/v1/pools/{pool_name}', 'admin'],
  ['GET', '/api/v1/jobs', 'viewer'],
  ['GET', '/api/v1/importErrors', 'viewer'],
  ['GET', '/api/v1/audit', 'admin'],
  ['GET', '/api/v1/users', 'admin'],
  ['POST', '/api/v1/users', 'admin'],
  ['DELETE', '/api/v1/users/{username}', 'admin'],
  ['GET', '/api/v1/stream', 'viewer'],
  ['GET', '/api/v1/events', 'viewer'],
  ['POST', '/api/v1/events/{key}', 'operator'],
];

const VALUES: Record<string, string> = {
  dag_id: 'api_dag',
  dag_run_id: 'r1',
  task_id: 'first',
  try_number: '1',
  xcom_key: 'return_value',
  pool_name: 'matrix_pool',
  username: 'nobody',
  key: 'matrix/event key',
};

const fill = (template: string): string => template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(VALUES[name] as string));

/** A body each write accepts, so an allowed call gets past validation too. */
function bodyFor(method: string, template: string): unknown {
  if (method === 'GET' || method === 'DELETE') return undefined;
  if (template.endsWith('/auth/login')) return { username: 'viewer', password: PASSWORD };
  if (template.endsWith('/dagRuns')) return { conf: { count: 2 } };
  if (template.endsWith('/clearTaskInstances')) return { dag_run_id: 'r1', task_ids: ['first'] };
  if (template.endsWith('{task_id}')) return { new_state: 'success' };
  if (template.endsWith('/dags/{dag_id}')) return { is_paused: false };
  if (template.endsWith('/pools')) return { name: 'matrix_pool', slots: 3 };
  if (template.endsWith('{pool_name}')) return { slots: 4 };
  if (template.endsWith('/users')) return { username: 'made_by_matrix', role: 'viewer', password: 'pw' };
  return {};
}

/** Calls a route; an SSE stream is aborted once its status is known. */
async function status(api: ApiRig, method: string, template: string, token?: string): Promise<number> {
  const path = fill(template);
  if (path.endsWith('/stream')) {
    const controller = new AbortController();
    const response = await fetch(`${api.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: controller.signal });
    controller.abort();
    return response.status;
  }
  return (await call(api.url, method, path, { token, body: bodyFor(method, template) })).status;
}

describe('API server: every route\'s auth, and the OpenAPI document', function () {
  this.timeout(120_000);
  let tdb: TestDatabase;
  let api: ApiRig;

  before(async () => {
    tdb = await createTestDatabase();
    await recordApiDags(tdb);
    const db = tdb.database.db;
    await createDagRun(db, { dagId: 'api_dag', runId: 'r1', conf: {}, logicalDate: new Date('2026-01-01T00:00:00Z') });
    await createTaskInstances(db, 'api_dag', 'r1', [{ taskId: 'first', maxTries: 0, priorityWeight: 1, queue: 'default' }]);
    await setXcom(db, { dagId: 'api_dag', runId: 'r1', taskId: 'first' }, 'return_value', JSON.stringify('first ran'));
    await setPool(db, { pool: 'matrix_pool', slots: 2 });
    await createUser(db, 'nobody', 'viewer', await hashPassword('pw'));
    api = await startApi(tdb.database);
  });

  after(async () => {
    await api?.stop();
    await tdb?.drop();
  });

  for (const [method, template, need] of ROUTES) {
    it(`${method} ${template}: ${need === 'public' ? 'open to anyone' : `anonymous refused, needs ${need}`}`, async () => {
      if (need === 'public') {
        expect(await status(api, method, template)).not.to.be.oneOf([401, 403]);
        return;
      }
      expect(await status(api, method, template), 'anonymous').to.equal(401);
      expect(await status(api, method, template, 'tsf_forged'), 'unknown token').to.equal(401);
      if (need === 'operator' || need === 'admin') expect(await status(api, method, template, api.tokens.viewer), 'viewer').to.equal(403);
      if (need === 'admin') expect(await status(api, method, template, api.tokens.operator), 'operator').to.equal(403);
      const allowed = await status(api, method, template, api.tokens[need]);
      expect(allowed, need).to.be.within(200, 299);
    });
  }

  it('serves a valid OpenAPI 3 document listing every route, generated from the schemas', async () => {
    const answer = await call<OpenApiDoc>(api.url, 'GET', '/api/v1/openapi.json', { token: api.tokens.viewer });
    expect(answer.status).to.equal(200);
    const doc = answer.body;
    expect(doc.openapi).to.match(/^3\.0\.\d$/);
    expect(doc.info.title).to.be.a('string');
    const served = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).filter((m) => HTTP_METHODS.has(m)).map((m) => `${m.toUpperCase()} ${p}`));
    // The triggers routes' auth is tested in api-triggers.test.ts (their calls need pending waits), the HITL ones' in hitl.test.ts.
    expect(served.sort()).to.deep.equal([...ROUTES, ...TRIGGER_ROUTES, ...HITL_ROUTES].map(([m, p]) => `${m} ${p}`).sort());
    expect(validateOpenApi(doc)).to.deep.equal([]);
    // The health route declares no security; the others inherit bearer-or-session.
    expect(doc.paths['/api/v1/health']?.['get']?.security).to.deep.equal([]);
    expect(doc.security).to.deep.equal([{ bearer: [] }, { session: [] }]);
  });
});

interface Operation {
  parameters?: { name: string; in: string; required?: boolean; schema?: object }[];
  requestBody?: { content: Record<string, { schema: object }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: object }> }>;
  security?: unknown[];
}
interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, object>; securitySchemes?: Record<string, { type: string }> };
  security?: unknown[];
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

/**
 * The OpenAPI 3.0 rules a generator can get wrong (no validator package is installed): required
 * fields, parameter locations, path parameters declared and required, a description per response,
 * response codes, resolvable $refs, known security schemes, and every schema a valid JSON Schema.
 */
function validateOpenApi(doc: OpenApiDoc): string[] {
  const problems: string[] = [];
  const ajv = new Ajv({ strict: false, validateSchema: true });
  const checkSchema = (where: string, schema: object): void => {
    const text = JSON.stringify(schema);
    for (const [, ref] of text.matchAll(/"\$ref":"([^"]+)"/g)) {
      const name = /^#\/components\/schemas\/(.+)$/.exec(ref as string)?.[1];
      if (!name || !doc.components?.schemas?.[name]) problems.push(`${where}: $ref ${ref} does not resolve`);
    }
    if (!text.includes('$ref') && !ajv.validateSchema(schema)) problems.push(`${where}: not a valid schema: ${ajv.errorsText(ajv.errors)}`);
  };
  if (typeof doc.info?.version !== 'string') problems.push('info.version is missing');
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (!path.startsWith('/')) problems.push(`path ${path} does not start with /`);
    const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries(operations)) {
      if (!HTTP_METHODS.has(method)) continue;
      const where = `${method.toUpperCase()} ${path}`;
      const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
      for (const name of templated) if (!declared.includes(name as string)) problems.push(`${where}: path parameter ${name} is not declared`);
      for (const p of op.parameters ?? []) {
        if (!['query', 'header', 'path', 'cookie'].includes(p.in)) problems.push(`${where}: parameter ${p.name} is in '${p.in}'`);
        if (p.in === 'path' && p.required !== true) problems.push(`${where}: path parameter ${p.name} is not required`);
        if (p.schema) checkSchema(`${where} parameter ${p.name}`, p.schema);
      }
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) checkSchema(`${where} body ${type}`, media.schema);
      if (Object.keys(op.responses ?? {}).length === 0) problems.push(`${where}: no responses`);
      for (const [code, response] of Object.entries(op.responses ?? {})) {
        if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(code)) problems.push(`${where}: response code ${code}`);
        if (typeof response.description !== 'string') problems.push(`${where} ${code}: no description`);
        for (const [type, media] of Object.entries(response.content ?? {})) checkSchema(`${where} ${code} ${type}`, media.schema);
      }
      for (const requirement of (op.security ?? []) as Record<string, unknown>[]) {
        for (const name of Object.keys(requirement)) if (!doc.components?.securitySchemes?.[name]) problems.push(`${where}: unknown security scheme ${name}`);
      }
    }
  }
  return problems;
}
