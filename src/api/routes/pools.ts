import { Type } from 'typebox';
import { deletePool, getPool, InvalidPoolError, listPools, PoolNotFoundError, setPool, type PoolStats } from '../../db/pools.ts';
import { badRequest, conflict, notFound } from '../problem.ts';
import { NoContent, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const Pool = Type.Object({
  name: Type.String(),
  slots: Type.Integer({ description: '-1: unlimited' }),
  description: Type.Union([Type.String(), Type.Null()]),
  include_deferred: Type.Boolean(),
  occupied_slots: Type.Integer(),
  running_slots: Type.Integer(),
  queued_slots: Type.Integer(),
  deferred_slots: Type.Integer(),
  open_slots: Type.Union([Type.Integer(), Type.Null()], { description: 'null: unlimited' }),
});

const poolJson = (p: PoolStats) => ({
  name: p.pool,
  slots: p.slots,
  description: p.description,
  include_deferred: p.includeDeferred,
  occupied_slots: p.running + p.queued + (p.includeDeferred ? p.deferred : 0),
  running_slots: p.running,
  queued_slots: p.queued,
  deferred_slots: p.deferred,
  open_slots: p.open,
});

const NameParams = Type.Object({ pool_name: Type.String() });

async function translate<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof PoolNotFoundError) throw notFound(error.message);
    if (error instanceof InvalidPoolError) throw badRequest(error.message);
    throw error;
  }
}

/** Pools: anyone reads them; admins create, resize and delete them (Airflow: pool writes need more than DAG writes). */
export function registerPoolRoutes(app: ApiApp, { database }: RouteContext): void {
  const { db } = database;

  app.get(
    '/pools',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['pools'],
        summary: 'the pools by name, with their occupied and open slots',
        querystring: Type.Object(PageQuery),
        response: responses({ 200: Type.Object({ pools: Type.Array(Pool), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      // A handful of rows, counted together in one statement: paged here rather than in SQL.
      const pools = await listPools(db);
      return { pools: pools.slice(request.query.offset, request.query.offset + request.query.limit).map(poolJson), total_entries: pools.length };
    },
  );

  app.get(
    '/pools/:pool_name',
    { config: { role: 'viewer' }, schema: { tags: ['pools'], summary: 'one pool', params: NameParams, response: responses({ 200: Pool }) } },
    async (request) => poolJson(await translate(() => getPool(db, request.params.pool_name))),
  );

  app.post(
    '/pools',
    {
      config: { role: 'admin', audit: 'pool.set' },
      schema: {
        tags: ['pools'],
        summary: 'create a pool (or replace it)',
        body: Type.Object({
          name: Type.String({ minLength: 1, maxLength: 256 }),
          slots: Type.Integer({ minimum: -1 }),
          description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
          include_deferred: Type.Optional(Type.Boolean()),
        }),
        response: responses({ 200: Pool }),
      },
    },
    async (request) => {
      const body = request.body;
      await translate(() => setPool(db, { pool: body.name, slots: body.slots, description: body.description, includeDeferred: body.include_deferred }));
      request.auditDetails = { name: body.name, slots: body.slots, include_deferred: body.include_deferred ?? null };
      return poolJson(await getPool(db, body.name));
    },
  );

  app.patch(
    '/pools/:pool_name',
    {
      config: { role: 'admin', audit: 'pool.set' },
      schema: {
        tags: ['pools'],
        summary: 'change a pool; fields left out keep their value',
        params: NameParams,
        body: Type.Object({
          slots: Type.Optional(Type.Integer({ minimum: -1 })),
          description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
          include_deferred: Type.Optional(Type.Boolean()),
        }),
        response: responses({ 200: Pool }),
      },
    },
    async (request) => {
      const name = request.params.pool_name;
      const before = await translate(() => getPool(db, name));
      const body = request.body;
      await translate(() => setPool(db, { pool: name, slots: body.slots ?? before.slots, description: body.description, includeDeferred: body.include_deferred }));
      request.auditDetails = { slots: body.slots ?? null, include_deferred: body.include_deferred ?? null };
      return poolJson(await getPool(db, name));
    },
  );

  app.delete(
    '/pools/:pool_name',
    { config: { role: 'admin', audit: 'pool.delete' }, schema: { tags: ['pools'], summary: 'delete a pool (not default_pool)', params: NameParams, response: responses({ 204: NoContent }) } },
    async (request, reply) => {
      const name = request.params.pool_name;
      try {
        await deletePool(db, name);
      } catch (error) {
        if (error instanceof InvalidPoolError) throw conflict(error.message);
        if (error instanceof PoolNotFoundError) throw notFound(error.message);
        throw error;
      }
      return reply.code(204).send(null);
    },
  );
}
