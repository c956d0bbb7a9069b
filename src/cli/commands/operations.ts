import { sql } from 'kysely';
import { DateTime } from 'luxon';
import { createLogger } from '../../common/logger.ts';
import { redactUrl } from '../../db/database.ts';
import { EmbeddedServer } from '../../db/embedded/embedded-server.ts';
import { aliveJobs } from '../../db/jobs.ts';
import { migrateToLatest, schemaStatus } from '../../db/migrations.ts';
import type { JobType } from '../../db/schema.ts';
import { listTriggers } from '../../db/triggers.ts';
import { TriggerRegistry } from '../../triggerer/trigger-registry.ts';
import { parse } from '../args.ts';
import { withRuntime } from '../runtime.ts';
import { parseCount, parseSeconds, UsageError, type Settings } from '../settings.ts';

/** `tsflow db migrate|reset|start|stop|status`. */
export async function dbCommand(sub: string | undefined, argv: string[], settings: Settings): Promise<number> {
  switch (sub) {
    case 'migrate':
      parse(argv, {}, 'tsflow db migrate');
      return withRuntime(settings, { skipSchemaCheck: true }, async (runtime) => {
        const applied = await migrateToLatest(runtime.database);
        console.log(applied.length > 0 ? `applied ${applied.join(', ')}` : 'database is up to date');
        return 0;
      });
    case 'reset': {
      const { values } = parse(argv, { yes: { type: 'boolean' } }, 'tsflow db reset --yes');
      if (!values.yes) throw new UsageError('db reset deletes every DAG run, task instance and trigger: add --yes to confirm');
      return withRuntime(settings, { skipSchemaCheck: true }, async (runtime) => {
        await sql`DROP SCHEMA public CASCADE`.execute(runtime.database.db);
        await sql`CREATE SCHEMA public`.execute(runtime.database.db);
        await migrateToLatest(runtime.database);
        console.log(`reset ${redactUrl(runtime.database.url)}`);
        return 0;
      });
    }
    case 'status': {
      parse(argv, {}, 'tsflow db status');
      return withRuntime(settings, { skipSchemaCheck: true }, async (runtime) => {
        const status = await schemaStatus(runtime.database);
        console.log(`database: ${redactUrl(runtime.database.url)}`);
        console.log(`applied: ${status.applied.join(', ') || 'none'}`);
        if (status.pending.length > 0) console.log(`pending: ${status.pending.join(', ')} (run tsflow db migrate)`);
        if (status.unknown.length > 0) console.log(`unknown to this tsflow: ${status.unknown.join(', ')} (upgrade tsflow)`);
        return status.pending.length > 0 || status.unknown.length > 0 ? 1 : 0;
      });
    }
    case 'start':
    case 'stop': {
      parse(argv, {}, `tsflow db ${sub}`);
      if (settings.databaseUrl) throw new UsageError(`db ${sub} manages the embedded server; TSFLOW_DATABASE_URL is set, so tsflow uses that server instead`);
      const server = new EmbeddedServer({ home: settings.home, logger: createLogger(settings.logLevel ?? 'warn') });
      if (sub === 'stop') {
        console.log((await server.stopAny()) ? 'embedded PostgreSQL stopped' : 'embedded PostgreSQL was not running');
        return 0;
      }
      // Started here but not stopped at exit: it keeps running for other commands until `db stop`.
      const connection = await server.start();
      console.log(`embedded PostgreSQL running at ${redactUrl(connection.url)} (data: ${connection.dataDir}); stop it with tsflow db stop`);
      return 0;
    }
    default:
      throw new UsageError('usage: tsflow db migrate | db reset --yes | db start | db stop | db status');
  }
}

/** `tsflow jobs check`: exit 0 when a live job of the type exists (a liveness probe). */
export async function jobsCheck(argv: string[], settings: Settings): Promise<number> {
  const usage = 'tsflow jobs check --job-type triggerer|scheduler [--hostname H] [--limit N] [--allow-multiple] [--threshold S]';
  const { values } = parse(
    argv,
    { 'job-type': { type: 'string' }, hostname: { type: 'string' }, limit: { type: 'string' }, 'allow-multiple': { type: 'boolean' }, threshold: { type: 'string' } },
    usage,
  );
  const jobType = values['job-type'];
  if (jobType !== 'triggerer' && jobType !== 'scheduler') throw new UsageError(`--job-type must be triggerer or scheduler\nusage: ${usage}`);
  const limit = parseCount(values.limit, '--limit', 1);
  if (limit > 1 && !values['allow-multiple']) throw new UsageError('--limit above 1 needs --allow-multiple');
  const thresholdMs = parseSeconds(values.threshold, '--threshold', 30_000);
  return withRuntime(settings, {}, async (runtime) => {
    const alive = (await aliveJobs(runtime.database.db, jobType as JobType, thresholdMs, values.hostname)).slice(0, limit);
    if (alive.length === 0) {
      console.error('No alive jobs found.');
      return 1;
    }
    console.log(`Found ${alive.length} alive job${alive.length > 1 ? 's' : ''}: ${alive.map((j) => `${j.id} (${j.hostname}, pid ${j.pid})`).join(', ')}`);
    return 0;
  });
}

/** `tsflow triggers list [--json]`. */
export async function triggersList(argv: string[], settings: Settings): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' }, 'triggers-folder': { type: 'string', multiple: true } }, 'tsflow triggers list [--json]');
  return withRuntime(settings, {}, async (runtime) => {
    const registry = await TriggerRegistry.create({ folders: values['triggers-folder'] ?? settings.triggersFolders, logger: runtime.logger });
    const jobs = new Map((await runtime.database.db.selectFrom('job').select(['id', 'hostname']).execute()).map((j) => [j.id, j.hostname]));
    const now = DateTime.utc();
    const listing = [];
    for (const t of await listTriggers(runtime.database.db)) {
      let dueAt: string | null = null;
      try {
        const TriggerClass = await registry.resolve(t.classpath);
        dueAt = new TriggerClass(t.kwargs).dueAt()?.toUTC().toISO() ?? null;
      } catch {
        // Unknown class or bad kwargs: no due time to show; the triggerer reports those as failures.
      }
      listing.push({
        id: t.id,
        classpath: t.classpath,
        triggererId: t.triggererId,
        triggererHost: t.triggererId === null ? null : (jobs.get(t.triggererId) ?? null),
        tasks: t.tasks,
        createdAt: t.createdAt.toISOString(),
        ageSeconds: Math.round(now.diff(DateTime.fromJSDate(t.createdAt)).as('seconds')),
        dueAt,
      });
    }
    if (values.json) console.log(JSON.stringify(listing));
    else {
      for (const t of listing) {
        const owner = t.triggererId === null ? 'unassigned' : `triggerer ${t.triggererId} (${t.triggererHost ?? '?'})`;
        const tasks = t.tasks.map((k) => `${k.dagId}.${k.taskId}@${k.runId}`).join(', ') || 'no task';
        console.log(`${String(t.id).padStart(6)}  ${t.classpath}  ${owner}  ${tasks}  age ${t.ageSeconds}s${t.dueAt ? `  due ${t.dueAt}` : ''}`);
      }
      if (listing.length === 0) console.log('no triggers');
    }
    return 0;
  });
}
