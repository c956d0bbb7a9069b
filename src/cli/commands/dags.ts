import path from 'node:path';
import { DateTime } from 'luxon';
import { DagBag } from '../../dag-bag/dag-bag.ts';
import { serializeDag } from '../../dag-bag/serialized-dag.ts';
import { createDagRun, getDagRun } from '../../db/dag-runs.ts';
import type { Db } from '../../db/database.ts';
import { aliveJobs } from '../../db/jobs.ts';
import { runIdFor } from '../../db/next-dagrun.ts';
import { listImportErrors, recordDags } from '../../db/serialized-dags.ts';
import { Channels } from '../../db/protocol.ts';
import { Wakeup } from '../../common/wakeup.ts';
import { DAGS_FOLDER, dagsFolderOf, JSON_OUTPUT } from '../common-options.ts';
import { createNotifier } from '../components.ts';
import { parseConf } from '../json-arg.ts';
import { readDagStates } from '../dag-states.ts';
import { printNotice, printWarning } from '../notice.ts';
import { checkConfAgainstParams, parseLogicalDate } from '../run-args.ts';
import { withRuntime } from '../runtime.ts';
import { defineCommand } from '../usage.ts';

/** `tsflow dags list`: the DAG folder, with each DAG's paused flag and next run when the database can say. Exit 1 if a file failed to import. */
export const dagsList = defineCommand(
  {
    name: 'dags list',
    summary: 'the DAGs in the DAG folder with their schedules, and the files that failed to import (exit 1 if any did)',
    options: { json: JSON_OUTPUT, 'dags-folder': DAGS_FOLDER },
    details: [
      'The DAG ids, task counts and schedules come from the DAG folder. Whether each DAG is paused and',
      'its next scheduled run come from the database when it is reachable (TSFLOW_DATABASE_URL, or the',
      "embedded server if it is already running: it is never started for this); otherwise they show '-'",
      '(null in --json) and one line on stderr says why.',
    ],
  },
  async ({ values }, settings) => {
    const bag = await DagBag.load(dagsFolderOf(settings, values['dags-folder']));
    const dags = [...bag.dags.values()].sort((a, b) => a.dagId.localeCompare(b.dagId));
    const errors = [...bag.importErrors].map(([file, error]) => ({ file, error: error.message }));
    const read = await readDagStates(settings, dags.map((d) => d.dagId));
    if ('unavailable' in read) printNotice(`dags list: paused state and next run not shown: ${read.unavailable}`);
    const states = 'states' in read ? read.states : undefined;
    const rows = dags.map((d) => {
      const state = states?.get(d.dagId);
      return {
        dagId: d.dagId,
        fileloc: d.fileloc,
        tasks: [...d.tasks.keys()],
        schedule: d.timetable.summary,
        isPaused: state?.isPaused ?? null,
        nextDagrun: state?.nextDagrun?.toISOString() ?? null,
        nextDagrunCreateAfter: state?.nextDagrunCreateAfter?.toISOString() ?? null,
      };
    });
    if (values.json) {
      console.log(JSON.stringify({ dags: rows, importErrors: errors }));
    } else {
      for (const r of rows) {
        const paused = r.isPaused === null ? '-' : r.isPaused ? 'paused' : 'active';
        console.log(
          `${r.dagId.padEnd(30)} ${String(r.tasks.length).padStart(3)} task(s)  ${r.schedule.padEnd(16)} ${paused.padEnd(6)}  next: ${(r.nextDagrun ?? '-').padEnd(24)}  ${path.relative(process.cwd(), r.fileloc ?? '')}`,
        );
      }
      for (const e of errors) console.error(`tsflow: error: ${path.relative(process.cwd(), e.file)} failed to import: ${e.error}`);
    }
    return errors.length > 0 ? 1 : 0;
  },
);

/** `tsflow dags list-import-errors [--json]`: the DAG files the DAG processor could not import. */
export const dagsListImportErrors = defineCommand(
  {
    name: 'dags list-import-errors',
    summary: 'the DAG files the DAG processor could not import, with their errors',
    options: { json: JSON_OUTPUT },
    details: ['Reads the database (what tsflow dag-processor recorded); exit 0 whether or not there are errors.'],
  },
  async ({ values }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const errors = await listImportErrors(runtime.database.db);
      if (values.json) {
        console.log(JSON.stringify(errors.map((e) => ({ filename: e.filename, error: e.stacktrace, timestamp: e.timestamp.toISOString() }))));
      } else if (errors.length === 0) {
        console.log('no import errors');
      } else {
        for (const e of errors) console.log(`${e.filename}  (${e.timestamp.toISOString()})\n  ${e.stacktrace.split('\n').join('\n  ')}`);
      }
      return 0;
    }),
);

/** A scheduler whose heartbeat is older than this is taken for dead (the scheduler's health threshold). */
const SCHEDULER_ALIVE_MS = 30_000;
/** The safety poll behind NOTIFY while `--wait` waits; each one also looks for a live scheduler. */
const WAIT_POLL_MS = 2000;

/** `tsflow dags trigger DAG [--run-id ID] [--conf JSON] [--wait]`. */
export const dagsTrigger = defineCommand(
  {
    name: 'dags trigger',
    summary: 'queue a run of DAG; with --wait, block until it ends',
    positionals: ['DAG'],
    options: {
      'run-id': { type: 'string', value: 'ID', description: "the new run's id", default: 'manual__<logical date>, e.g. manual__2026-01-01T00:00:00+00:00' },
      'logical-date': { type: 'string', value: 'DATE', description: "the run's logical date, ISO 8601 (no offset means UTC)", default: 'now' },
      conf: { type: 'string', value: 'JSON', description: "a JSON object the tasks see as context.conf; it overrides the DAG's params, checked first", default: '{}' },
      wait: { type: 'boolean', description: 'wait for the run to end: exit 0 if it succeeded, 1 if it failed' },
      'dags-folder': DAGS_FOLDER,
    },
    details: [
      'A scheduler (tsflow scheduler, or tsflow standalone) runs the queued run; with --wait, a warning',
      'on stderr says so when no scheduler is alive.',
      "The run's data interval is the one the DAG's schedule infers for a run at the logical date (no",
      'schedule: zero length at the logical date). A bad date or a conf that does not satisfy the',
      "DAG's params is refused (exit 2) before anything is written.",
    ],
  },
  async ({ values, positionals }, settings) => {
    const dagId = positionals[0] as string;
    const conf = parseConf(values.conf);
    const logicalDate = values['logical-date'] === undefined ? DateTime.utc() : parseLogicalDate(values['logical-date']);
    const bag = await DagBag.load(dagsFolderOf(settings, values['dags-folder']));
    const dag = bag.getDag(dagId);
    checkConfAgainstParams(dag, conf);
    const interval = dag.timetable.inferManualInterval(logicalDate);
    const runId = values['run-id'] ?? runIdFor('manual', logicalDate);
    return withRuntime(settings, {}, async (runtime) => {
      const { db } = runtime.database;
      // Recorded as a DAG processor would (a no-op when it already has this version), so a scheduler
      // can run the run even before a DAG processor has seen a new file.
      await recordDags(db, [serializeDag(dag, dag.fileloc ?? '')]);
      const notifier = values.wait ? createNotifier(runtime, [Channels.ti]) : undefined;
      const wakeup = new Wakeup();
      notifier?.on('notification', () => wakeup.nudge());
      await notifier?.start();
      try {
        await createDagRun(db, {
          dagId,
          runId,
          conf,
          runType: 'manual',
          logicalDate: logicalDate.toJSDate(),
          dataInterval: { start: interval.start.toJSDate(), end: interval.end.toJSDate() },
        });
        console.log(`triggered ${dagId} run '${runId}'`);
        if (!values.wait) return 0;
        const schedulerWatch = new SchedulerWatch(db);
        await schedulerWatch.check();
        for (;;) {
          const run = await getDagRun(db, dagId, runId);
          if (run?.state === 'success' || run?.state === 'failed') {
            console.log(`run '${runId}' of ${dagId} finished: ${run.state}`);
            return run.state === 'success' ? 0 : 1;
          }
          const nudged = await wakeup.wait(WAIT_POLL_MS);
          if (!nudged) await schedulerWatch.check();
        }
      } finally {
        await notifier?.stop();
      }
    });
  },
);

/**
 * Tells a `--wait` that would otherwise wait silently that nothing will run its run: one warning
 * when no scheduler is alive at the start, and one each time the last live scheduler goes away.
 */
class SchedulerWatch {
  readonly #db: Db;
  #warned = false;

  constructor(db: Db) {
    this.#db = db;
  }

  async check(): Promise<void> {
    const alive = (await aliveJobs(this.#db, 'scheduler', SCHEDULER_ALIVE_MS)).length > 0;
    if (alive) {
      this.#warned = false;
    } else if (!this.#warned) {
      this.#warned = true;
      printWarning(
        `no scheduler is alive (no scheduler job with a heartbeat in the last ${SCHEDULER_ALIVE_MS / 1000} s); ` +
          'the run stays queued until one starts: run tsflow scheduler (or tsflow standalone)',
      );
    }
  }
}

/** `tsflow dags state DAG RUN_ID`. */
export const dagsState = defineCommand(
  { name: 'dags state', summary: "a run's state (queued, running, success, failed)", positionals: ['DAG', 'RUN_ID'], options: {} },
  async ({ positionals }, settings) => {
    const [dagId, runId] = positionals as [string, string];
    return withRuntime(settings, {}, async (runtime) => {
      const run = await getDagRun(runtime.database.db, dagId, runId);
      if (!run) {
        console.error(`tsflow: error: DAG '${dagId}' has no run '${runId}': check both ids (tsflow dags trigger printed the run id), or start a run with tsflow dags trigger ${dagId}`);
        return 1;
      }
      console.log(run.state);
      return 0;
    });
  },
);
