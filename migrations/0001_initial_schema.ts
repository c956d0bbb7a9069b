import { sql, type Kysely } from 'kysely';

/**
 * The first schema: dags, runs, task instances with their deferral columns, triggers, daemon jobs
 * and XComs. Every time is timestamptz (UTC). Append-only: later changes get their own migration.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('dag')
    .addColumn('dag_id', 'text', (c) => c.primaryKey())
    .addColumn('fileloc', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('is_paused', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('last_parsed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('dag_run')
    .addColumn('dag_id', 'text', (c) => c.notNull().references('dag.dag_id').onDelete('cascade'))
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state IN ('queued', 'running', 'success', 'failed')`))
    .addColumn('run_type', 'text', (c) => c.notNull().defaultTo('manual'))
    .addColumn('conf', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('logical_date', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('start_date', 'timestamptz')
    .addColumn('end_date', 'timestamptz')
    .addPrimaryKeyConstraint('dag_run_pkey', ['dag_id', 'run_id'])
    .execute();
  await sql`CREATE INDEX dag_run_active_idx ON dag_run (state) WHERE state IN ('queued', 'running')`.execute(db);

  await db.schema
    .createTable('job')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('job_type', 'text', (c) => c.notNull().check(sql`job_type IN ('scheduler', 'triggerer')`))
    .addColumn('hostname', 'text', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state IN ('running', 'success', 'failed')`))
    .addColumn('capacity', 'integer')
    .addColumn('start_date', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('end_date', 'timestamptz')
    .addColumn('latest_heartbeat', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`CREATE INDEX job_alive_idx ON job (job_type, latest_heartbeat) WHERE state = 'running'`.execute(db);

  await db.schema
    .createTable('trigger')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('classpath', 'text', (c) => c.notNull().check(sql`length(classpath) BETWEEN 1 AND 1000`))
    .addColumn('kwargs', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // No foreign keys to or from trigger: a key check per row would tax every batch claim and event
    // write, and ids are never reused. The code keeps the references tidy (see src/db/triggers.ts).
    .addColumn('triggerer_id', 'bigint')
    // Copied from the task instance at defer time so claims can order by it without a join.
    .addColumn('priority_weight', 'integer', (c) => c.notNull().defaultTo(1))
    .execute();
  // Claims read unowned triggers oldest first, then by priority: this partial index serves them.
  await sql`CREATE INDEX trigger_unassigned_idx ON trigger (created_at, priority_weight DESC, id) WHERE triggerer_id IS NULL`.execute(db);
  await sql`CREATE INDEX trigger_triggerer_idx ON trigger (triggerer_id) WHERE triggerer_id IS NOT NULL`.execute(db);

  await db.schema
    .createTable('task_instance')
    .addColumn('dag_id', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) =>
      c.check(sql`state IN ('scheduled', 'queued', 'running', 'success', 'failed', 'skipped', 'upstream_failed',
        'up_for_retry', 'up_for_reschedule', 'deferred', 'removed')`),
    )
    .addColumn('try_number', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('max_tries', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('priority_weight', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('queue', 'text', (c) => c.notNull().defaultTo('default'))
    .addColumn('hostname', 'text')
    .addColumn('pid', 'integer')
    .addColumn('start_date', 'timestamptz')
    .addColumn('end_date', 'timestamptz')
    .addColumn('scheduled_at', 'timestamptz')
    .addColumn('queued_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // up_for_retry / up_for_reschedule: when the task may be scheduled again.
    .addColumn('ready_at', 'timestamptz')
    .addColumn('last_heartbeat_at', 'timestamptz')
    .addColumn('error', 'text')
    .addColumn('next_method', 'text')
    .addColumn('next_kwargs', 'jsonb')
    .addColumn('trigger_id', 'bigint')
    .addColumn('trigger_timeout', 'timestamptz')
    .addPrimaryKeyConstraint('task_instance_pkey', ['dag_id', 'run_id', 'task_id'])
    .addForeignKeyConstraint('task_instance_dag_run_fkey', ['dag_id', 'run_id'], 'dag_run', ['dag_id', 'run_id'], (c) =>
      c.onDelete('cascade'),
    )
    .execute();
  await sql`CREATE INDEX ti_trigger_idx ON task_instance (trigger_id) WHERE trigger_id IS NOT NULL`.execute(db);
  await sql`CREATE INDEX ti_active_idx ON task_instance (state, priority_weight DESC, scheduled_at)
    WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule')`.execute(db);
  await sql`CREATE INDEX ti_trigger_timeout_idx ON task_instance (trigger_timeout) WHERE state = 'deferred'`.execute(db);
  // Task instances not decided yet (waiting on upstreams): the runs the scheduler evaluates dependencies for.
  await sql`CREATE INDEX ti_undecided_idx ON task_instance (dag_id, run_id) WHERE state IS NULL`.execute(db);

  await db.schema
    .createTable('xcom')
    .addColumn('dag_id', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('xcom_pkey', ['dag_id', 'run_id', 'task_id', 'key'])
    .addForeignKeyConstraint('xcom_task_instance_fkey', ['dag_id', 'run_id', 'task_id'], 'task_instance', ['dag_id', 'run_id', 'task_id'], (c) =>
      c.onDelete('cascade'),
    )
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['xcom', 'task_instance', 'trigger', 'job', 'dag_run', 'dag']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
