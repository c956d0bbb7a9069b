import { deletePool, getPool, listPools, setPool, type PoolStats } from '../../db/pools.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { printWarning } from '../notice.ts';
import { withRuntime } from '../runtime.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/*
 * Airflow's `pools` verbs on the database: set, list, get, delete. The slot counts are those the
 * scheduler's enqueue makes (src/db/pools.ts), read without its locks.
 */

/** SLOTS: a whole number ≥ 0, or -1 for unlimited. Checked before the database is opened. */
function parseSlots(value: string): number {
  const slots = Number(value);
  if (value.trim() === '' || !Number.isInteger(slots) || slots < -1) {
    throw new UsageError(`SLOTS must be a whole number ≥ 0, or -1 for unlimited; got '${value}'`);
  }
  return slots;
}

function poolJson(p: PoolStats) {
  return {
    name: p.pool,
    slots: p.slots,
    running: p.running,
    queued: p.queued,
    deferred: p.deferred,
    open: p.open,
    includeDeferred: p.includeDeferred,
    description: p.description,
  };
}

function printPools(pools: readonly PoolStats[]): void {
  const header = ['pool', 'slots', 'running', 'queued', 'deferred', 'open', 'counts deferred', 'description'];
  const rows = pools.map((p) => [
    p.pool,
    p.slots === -1 ? 'unlimited' : String(p.slots),
    String(p.running),
    String(p.queued),
    String(p.deferred),
    p.open === null ? 'unlimited' : String(p.open),
    p.includeDeferred ? 'yes' : 'no',
    p.description ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

/** `tsflow pools set NAME SLOTS [--description D] [--include-deferred]`. */
export const poolsSet = defineCommand(
  {
    name: 'pools set',
    summary: 'create pool NAME with SLOTS slots, or change it (-1: unlimited)',
    positionals: ['NAME', 'SLOTS'],
    options: {
      description: { type: 'string', value: 'D', description: 'what the pool is for (kept when not given)' },
      'include-deferred': { type: 'boolean', description: 'deferred tasks occupy their slots too (off when not given, as in Airflow)' },
    },
    details: [
      'Queued and running task instances occupy pool_slots each; scheduled ones none. Shrinking a pool below what',
      'it holds stops nothing: the scheduler queues no more into it until enough slots are free.',
    ],
  },
  async ({ values, positionals }, settings) => {
    const [name, slotsText] = positionals as [string, string];
    if (name.trim() === '') throw new UsageError('NAME cannot be empty');
    const slots = parseSlots(slotsText);
    return withRuntime(settings, {}, async (runtime) => {
      const { db } = runtime.database;
      await setPool(db, { pool: name, slots, description: values.description, includeDeferred: values['include-deferred'] ?? false });
      printPools([await getPool(db, name)]);
      return 0;
    });
  },
);

/** `tsflow pools list [--json]`. */
export const poolsList = defineCommand(
  {
    name: 'pools list',
    summary: 'every pool with its running, queued and deferred slots and how many are open',
    options: { json: { ...JSON_OUTPUT, description: 'print [{ name, slots, running, queued, deferred, open, includeDeferred, description }]' } },
    details: ['Counts are pool slots (a task with poolSlots 2 counts 2). open is null (unlimited) for slots -1.'],
  },
  async ({ values }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const pools = await listPools(runtime.database.db);
      if (values.json) console.log(JSON.stringify(pools.map(poolJson)));
      else printPools(pools);
      return 0;
    }),
);

/** `tsflow pools get NAME [--json]`. */
export const poolsGet = defineCommand(
  {
    name: 'pools get',
    summary: 'one pool, as pools list shows it',
    positionals: ['NAME'],
    options: { json: { ...JSON_OUTPUT, description: 'print { name, slots, running, queued, deferred, open, includeDeferred, description }' } },
  },
  async ({ values, positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const pool = await getPool(runtime.database.db, positionals[0] as string);
      if (values.json) console.log(JSON.stringify(poolJson(pool)));
      else printPools([pool]);
      return 0;
    }),
);

/** `tsflow pools delete NAME`. */
export const poolsDelete = defineCommand(
  {
    name: 'pools delete',
    summary: 'delete pool NAME (not default_pool)',
    positionals: ['NAME'],
    options: {},
    details: [
      'As in Airflow, a pool that tasks occupy may be deleted: they run to their end, and every task that still',
      'names the pool waits (the scheduler warns) until a pool of that name is created again.',
    ],
  },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const before = await deletePool(runtime.database.db, positionals[0] as string);
      const held = before.running + before.queued + before.deferred;
      if (held > 0) {
        printWarning(`pool '${before.pool}' still had ${held} slot(s) taken (queued, running or deferred): those tasks go on; tasks that name it wait until it exists again`);
      }
      console.log(`pool '${before.pool}' deleted`);
      return 0;
    }),
);
