import { processMasker } from '../../secrets/masker.ts';
import { DateTime } from 'luxon';
import { createLogger } from '../../common/logger.ts';
import { redactUrl } from '../../db/database.ts';
import { EmbeddedServer } from '../../db/embedded/embedded-server.ts';
import { aliveJobs, jobHostnames } from '../../db/jobs.ts';
import { migrateToLatest, resetSchema, schemaStatus } from '../../db/migrations.ts';
import type { JobType } from '../../db/schema.ts';
import { GRAPHILE_SCHEMA, pendingGraphileMigrations } from '../../graphile/graphile-schema.ts';
import { listTriggers } from '../../db/triggers.ts';
import { TriggerRegistry } from '../../triggerer/trigger-registry.ts';
import { JSON_OUTPUT, TRIGGERS_FOLDER, triggersFoldersOf } from '../common-options.ts';
import { printNotice } from '../notice.ts';
import { withRuntime } from '../runtime.ts';
import { defineCommand } from '../usage.ts';
import { parseCount, parseSeconds, UsageError, type Settings } from '../settings.ts';

/** `tsflow db migrate`. */
export const dbMigrate = defineCommand(
  { name: 'db migrate', summary: "apply pending schema migrations (kysely migrations in migrations/, and graphile-worker's schema)", options: {} },
  async (_args, settings) =>
    withRuntime(settings, { skipSchemaCheck: true }, async (runtime) => {
      const applied = await migrateToLatest(runtime.database);
      console.log(applied.length > 0 ? `applied ${applied.join(', ')}` : 'database is up to date');
      return 0;
    }),
);

/** `tsflow db reset --yes`. */
export const dbReset = defineCommand(
  {
    name: 'db reset',
    summary: 'drop every table and migrate afresh: deletes all runs, task instances and triggers',
    options: { yes: { type: 'boolean', description: 'confirm the deletion (required)' } },
  },
  async ({ values }, settings) => {
    if (!values.yes) throw new UsageError('db reset deletes every DAG run, task instance and trigger: add --yes to confirm');
    return withRuntime(settings, { skipSchemaCheck: true }, async (runtime) => {
      await resetSchema(runtime.database);
      console.log(`reset ${redactUrl(runtime.database.url)}`);
      return 0;
    });
  },
);

/** `tsflow db status`. */
export const dbStatus = defineCommand(
  { name: 'db status', summary: 'the database in use and its applied and pending migrations (exit 1 if not current)', options: {} },
  async (_args, settings) =>
    withRuntime(settings, { skipSchemaCheck: true }, async (runtime) => {
      const status = await schemaStatus(runtime.database);
      console.log(`database: ${redactUrl(runtime.database.url)}`);
      console.log(`applied: ${status.applied.join(', ') || 'none'}`);
      if (status.pending.length > 0) console.log(`pending: ${status.pending.join(', ')} (run tsflow db migrate)`);
      if (status.unknown.length > 0) console.log(`unknown to this tsflow: ${status.unknown.join(', ')} (upgrade tsflow)`);
      // graphile-worker's schema matters to the graphile executor only; it is reported either way.
      const graphilePending = await pendingGraphileMigrations(runtime.database);
      const graphile = graphilePending === 0 ? 'current' : graphilePending === null ? 'missing (run tsflow db migrate)' : `${graphilePending} migration(s) pending (run tsflow db migrate)`;
      console.log(`graphile-worker schema (${GRAPHILE_SCHEMA}): ${graphile}`);
      const graphileNeeded = settings.executor === 'graphile' && graphilePending !== 0;
      return status.pending.length > 0 || status.unknown.length > 0 || graphileNeeded ? 1 : 0;
    }),
);

function embeddedServer(settings: Settings, command: string): EmbeddedServer {
  if (settings.databaseUrl) throw new UsageError(`${command} manages the embedded server; TSFLOW_DATABASE_URL is set, so tsflow uses that server instead`);
  return new EmbeddedServer({ home: settings.home, logger: createLogger(settings.logLevel ?? 'warn'), notice: printNotice });
}

/** `tsflow db start`. */
export const dbStart = defineCommand(
  { name: 'db start', summary: 'start the embedded PostgreSQL so that it outlives commands, until tsflow db stop', options: {} },
  async (_args, settings) => {
    // Started here but not stopped at exit: it keeps running for other commands until `db stop`.
    const connection = await embeddedServer(settings, 'db start').start();
    console.log(`embedded PostgreSQL running at ${redactUrl(connection.url)} (data: ${connection.dataDir}); stop it with tsflow db stop`);
    return 0;
  },
);

/** `tsflow db stop`. */
export const dbStop = defineCommand(
  { name: 'db stop', summary: 'stop the embedded PostgreSQL of this TSFLOW_HOME', options: {} },
  async (_args, settings) => {
    console.log((await embeddedServer(settings, 'db stop').stopAny()) ? 'embedded PostgreSQL stopped' : 'embedded PostgreSQL was not running');
    return 0;
  },
);

/** `tsflow jobs check`: exit 0 when a live job of the type exists (a liveness probe). */
export const jobsCheck = defineCommand(
  {
    name: 'jobs check',
    summary: 'liveness probe: exit 0 if a live job of the type exists, 1 if none',
    options: {
      'job-type': { type: 'string', value: 'TYPE', description: 'triggerer, scheduler, dag_processor or worker (required)' },
      hostname: { type: 'string', value: 'H', description: 'only jobs on this host', default: 'any host' },
      limit: { type: 'string', value: 'N', description: 'list up to N live jobs (above 1 needs --allow-multiple)', default: '1' },
      'allow-multiple': { type: 'boolean', description: 'allow --limit above 1' },
      threshold: { type: 'string', value: 'S', description: 'a job is alive if it heartbeat within S seconds', default: '30' },
    },
  },
  async ({ values }, settings) => {
    const jobType = values['job-type'];
    if (jobType !== 'triggerer' && jobType !== 'scheduler' && jobType !== 'dag_processor' && jobType !== 'worker') {
      throw new UsageError(`--job-type must be triggerer, scheduler, dag_processor or worker, got ${jobType === undefined ? 'nothing' : `'${jobType}'`}`);
    }
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
  },
);

/** `tsflow triggers list [--json]`. */
export const triggersList = defineCommand(
  {
    name: 'triggers list',
    summary: 'every trigger: classpath, owning triggerer, task(s), age, (time triggers) due time, and kwargs with secrets as ***',
    options: { json: JSON_OUTPUT, 'triggers-folder': TRIGGERS_FOLDER },
  },
  async ({ values }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const registry = await TriggerRegistry.create({ folders: triggersFoldersOf(settings, values['triggers-folder']), logger: runtime.logger });
      const jobs = await jobHostnames(runtime.database.db);
      const now = DateTime.utc();
      const listing = [];
      for (const t of await listTriggers(runtime.database.db)) {
        let dueAt: string | null = null;
        try {
          if (t.kwargsError !== undefined) throw new Error(t.kwargsError);
          const TriggerClass = await registry.resolve(t.classpath);
          dueAt = new TriggerClass(t.kwargs).dueAt()?.toUTC().toISO() ?? null;
        } catch {
          // Unknown class or bad kwargs: no due time to show; the triggerer reports those as failures.
        }
        listing.push({
          id: t.id,
          classpath: t.classpath,
          // Secret-looking fields (headers.Authorization, a token, …) and registered secrets as ***.
          kwargs: processMasker.maskJson(t.kwargs),
          ...(t.kwargsError === undefined ? {} : { kwargsError: t.kwargsError }),
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
          console.log(`        kwargs ${t.kwargsError ?? JSON.stringify(t.kwargs)}`);
        }
        if (listing.length === 0) console.log('no triggers');
      }
      return 0;
    }),
);
