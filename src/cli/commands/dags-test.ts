import { DateTime } from 'luxon';
import { CleanupStack } from '../../common/cleanup-stack.ts';
import { DagBag } from '../../dag-bag/dag-bag.ts';
import { createDagRun, getDagRun, upsertDags } from '../../db/dag-runs.ts';
import { runIdFor } from '../../db/next-dagrun.ts';
import { tiKeyString, type TaskInstanceKey } from '../../db/schema.ts';
import { Scheduler } from '../../scheduler/scheduler.ts';
import { DAGS_FOLDER, dagsFolderOf, TRIGGERS_FOLDER, triggersFoldersOf } from '../common-options.ts';
import { ALL_CHANNELS, createExecutor, createNotifier, createTriggerer, printState, runFinished } from '../components.ts';
import { parseConf } from '../json-arg.ts';
import { checkConfAgainstParams, parseLogicalDate } from '../run-args.ts';
import { shutdownSignal } from '../signals.ts';
import { TaskLogTail } from '../task-log-tail.ts';
import { withRuntime } from '../runtime.ts';
import { defineCommand } from '../usage.ts';

/** States after which the task's code has stopped running for now: its log so far is printed. */
const CODE_STOPPED = new Set(['success', 'failed', 'skipped', 'up_for_retry', 'up_for_reschedule', 'deferred']);

/**
 * `tsflow dags test DAG [LOGICAL_DATE]` (Airflow's `dags test`): one manual run of the DAG, carried
 * out by a scheduler, a SequentialExecutor and a triggerer inside this process, so deferrals happen
 * for real but no daemon has to be running. Exit 0 if the run succeeded, else 1.
 */
export const dagsTest = defineCommand(
  {
    name: 'dags test',
    summary: 'run one manual run of DAG in this process (scheduler, executor and triggerer included); exit 0 if it succeeded',
    positionals: ['DAG'],
    optionalPositionals: ['LOGICAL_DATE'],
    options: {
      conf: { type: 'string', value: 'JSON', description: "a JSON object the tasks see as context.conf; it overrides the DAG's params, checked first", default: '{}' },
      'run-id': { type: 'string', value: 'ID', description: "the run's id", default: 'manual__<logical date>' },
      'dags-folder': DAGS_FOLDER,
      'triggers-folder': TRIGGERS_FOLDER,
    },
    details: [
      'LOGICAL_DATE is ISO 8601 (no offset means UTC); without it, now. Prints each state change and,',
      "whenever a task's code stops (finished, deferred, rescheduled), its log lines. The run and its",
      'task instances are written to the configured database (embedded by default) like any run;',
      'the scheduler and triggerer in this process stop when the run ends. The embedded database is',
      'migrated on first use; a TSFLOW_DATABASE_URL one must be migrated already (tsflow db migrate).',
    ],
  },
  async ({ values, positionals }, settings) => {
    const dagId = positionals[0] as string;
    const conf = parseConf(values.conf);
    const logicalDate = positionals[1] === undefined ? DateTime.utc() : parseLogicalDate(positionals[1], 'LOGICAL_DATE');
    const loaded = await DagBag.load(dagsFolderOf(settings, values['dags-folder']));
    const dag = loaded.getDag(dagId);
    checkConfAgainstParams(dag, conf);
    const interval = dag.timetable.inferManualInterval(logicalDate);
    const runId = values['run-id'] ?? runIdFor('manual', logicalDate);
    const triggersFolders = triggersFoldersOf(settings, values['triggers-folder']);
    // The scheduler records only the DAG under test and works only on its runs (`only`): it creates
    // no scheduled runs and leaves the rest of a shared database to the deployment's schedulers. It
    // starts the test's run even if the DAG is paused or at its maxActiveRuns, as Airflow's dags test.
    const bag = DagBag.of([dag], loaded.folder);

    // The embedded database is migrated on first use, as standalone does; a configured one must be already.
    const migrate = settings.databaseUrl === undefined;
    return withRuntime(settings, { migrate, defaultLogLevel: 'warn', applicationName: 'tsflow-dags-test' }, async (runtime) => {
      const { db } = runtime.database;
      const existing = await getDagRun(db, dagId, runId);
      if (existing) {
        console.error(`tsflow: error: DAG '${dagId}' already has a run '${runId}' (${existing.state}): pass another LOGICAL_DATE or --run-id`);
        return 1;
      }
      const cleanup = new CleanupStack();
      const signals = shutdownSignal({ forceAfterMs: 30_000, onForce: (why) => console.error(`tsflow: ${why}`) });
      cleanup.push('signal handlers', () => signals.dispose());
      try {
        await upsertDags(db, [{ dagId, fileloc: dag.fileloc ?? '', description: dag.description }]);
        const notifier = createNotifier(runtime, ALL_CHANNELS);
        await notifier.start();
        cleanup.push('notifier', () => notifier.stop());
        const scheduler = new Scheduler({
          database: runtime.database,
          dagBag: bag,
          executor: createExecutor(runtime, loaded, 'sequential', 1),
          logger: runtime.logger,
          notifier,
          only: { dagIds: [dagId] },
        });
        const triggerer = await createTriggerer(runtime, notifier, {}, triggersFolders);
        const logs = new TaskLogTail(settings.logsFolder);
        const tries = new Map<string, number>();
        const showState = (key: TaskInstanceKey, state: string, tryNumber?: number): void => {
          if (key.dagId !== dagId || key.runId !== runId) return;
          if (tryNumber !== undefined) tries.set(tiKeyString(key), tryNumber);
          printState(key, state, tryNumber);
          const current = tries.get(tiKeyString(key));
          if (CODE_STOPPED.has(state) && current !== undefined) {
            // The runner reports the state just before it logs 'task finished' and closes the file.
            setImmediate(() => {
              const lines = logs.read(key, current);
              if (lines.length > 0) console.log([`--- log of ${key.taskId}${key.mapIndex !== undefined && key.mapIndex >= 0 ? `[${key.mapIndex}]` : ''}, try ${current}:`, ...lines.map((l) => `    ${l}`)].join('\n'));
            });
          }
        };
        scheduler.on('ti:state', ({ key, state, tryNumber }) => showState(key, state, tryNumber));
        triggerer.on('trigger:fired', ({ task, result }) => task && result === 'applied' && showState(task, 'scheduled (trigger fired)'));
        triggerer.on('trigger:failed', ({ task, result, error }) => task && result === 'applied' && showState(task, `scheduled (trigger failed: ${error})`));
        const finished = runFinished(scheduler, dagId, runId);
        cleanup.push('scheduler', () => scheduler.stop());
        await scheduler.start();
        cleanup.push('triggerer', () => triggerer.stop());
        await triggerer.start();
        await createDagRun(db, {
          dagId,
          runId,
          conf,
          runType: 'manual',
          logicalDate: logicalDate.toJSDate(),
          dataInterval: { start: interval.start.toJSDate(), end: interval.end.toJSDate() },
        });
        console.log(`tsflow dags test: ${dagId} run '${runId}' (logical date ${logicalDate.toISO()})`);
        const outcome = await Promise.race([finished, signals.received.then(() => 'interrupted' as const)]);
        console.log(`tsflow dags test: run '${runId}' of ${dagId} ${outcome === 'interrupted' ? 'interrupted' : `finished: ${outcome}`}`);
        return outcome === 'success' ? 0 : 1;
      } finally {
        await cleanup.runAll();
      }
    });
  },
);

