import { DateTime } from 'luxon';
import { backfill, backfillIntervals, REPROCESS_BEHAVIORS, type BackfillEntry, type ReprocessBehavior } from '../../db/backfill.ts';
import { DAG_RUN_STATES, isDagPaused, lastAutomatedInterval, listDagRuns, setDagPaused } from '../../db/dag-state.ts';
import { restrictionOf } from '../../db/next-dagrun.ts';
import type { DagRunRow, DagRunState } from '../../db/schema.ts';
import type { DataInterval } from '../../scheduling/timetable.ts';
import { DAGS_FOLDER, dagsFolderOf, JSON_OUTPUT } from '../common-options.ts';
import { dagSpecFor } from '../dag-spec-source.ts';
import { printWarning } from '../notice.ts';
import { withRuntime } from '../runtime.ts';
import { parseCount, UsageError, type Settings } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/*
 * Airflow's DAG verbs on the database: pause, unpause, list-runs, next-execution, backfill. Each reads
 * the DAG's serialized form from the database, or parses the DAG folder when none is stored yet.
 */

const iso = (d: Date | DateTime | null | undefined): string => {
  if (d === null || d === undefined) return '-';
  return (d instanceof Date ? DateTime.fromJSDate(d) : d).toUTC().toISO({ suppressMilliseconds: true }) as string;
};
const intervalText = (i: DataInterval): string => `[${iso(i.start)}, ${iso(i.end)})`;

function pauseCommand(paused: boolean) {
  const verb = paused ? 'pause' : 'unpause';
  return defineCommand(
    {
      name: `dags ${verb}`,
      summary: paused ? 'pause DAG: the scheduler creates and starts no new runs of it' : 'unpause DAG: its schedule resumes from now',
      positionals: ['DAG'],
      options: { 'dags-folder': DAGS_FOLDER },
      details: paused
        ? ['Its running runs go on to the end; queued runs wait, and no scheduled run is created, until it is unpaused.']
        : ["The next run is recomputed from now, so a DAG without catchup does not run the interval stored before it was paused."],
    },
    async ({ values, positionals }, settings) => {
      const dagId = positionals[0] as string;
      return withRuntime(settings, {}, async (runtime) => {
        const { db } = runtime.database;
        const spec = await dagSpecFor(db, dagsFolderOf(settings, values['dags-folder']), dagId);
        const { changed } = await setDagPaused(db, spec, paused);
        console.log(`${dagId} is ${paused ? 'paused' : 'unpaused'}${changed ? '' : ' (it already was)'}`);
        return 0;
      });
    },
  );
}

/** `tsflow dags pause DAG`. */
export const dagsPause = pauseCommand(true);
/** `tsflow dags unpause DAG`. */
export const dagsUnpause = pauseCommand(false);

/** tsflow dags list-runs DAG [--state S] [--limit N] [--json]. */
export const dagsListRuns = defineCommand(
  {
    name: 'dags list-runs',
    summary: "DAG's runs, newest logical date first",
    positionals: ['DAG'],
    options: {
      state: { type: 'string', value: 'S', description: `only runs in this state: ${DAG_RUN_STATES.join(', ')}` },
      limit: { type: 'string', value: 'N', description: 'at most N runs', default: '100' },
      json: { ...JSON_OUTPUT, description: 'print [{ runId, runType, state, logicalDate, dataIntervalStart, dataIntervalEnd, startDate, endDate }]' },
      'dags-folder': DAGS_FOLDER,
    },
  },
  async ({ values, positionals }, settings) => {
    const dagId = positionals[0] as string;
    const state = values.state;
    if (state !== undefined && !DAG_RUN_STATES.includes(state as DagRunState)) {
      throw new UsageError(`--state '${state}' is not a run state: choose one of ${DAG_RUN_STATES.join(', ')}`);
    }
    const limit = parseCount(values.limit, '--limit', 100);
    return withRuntime(settings, {}, async (runtime) => {
      const { db } = runtime.database;
      // A DAG the database knows (even one whose file is gone) lists its runs; otherwise the folder must define it.
      if ((await isDagPaused(db, dagId)) === undefined) await dagSpecFor(db, dagsFolderOf(settings, values['dags-folder']), dagId);
      const runs = await listDagRuns(db, dagId, { state: state as DagRunState | undefined, limit });
      if (values.json) console.log(JSON.stringify(runs.map(runJson)));
      else printRuns(runs);
      return 0;
    });
  },
);

function runJson(r: DagRunRow) {
  const or = (d: Date | null): string | null => (d ? iso(d) : null);
  return {
    runId: r.run_id,
    runType: r.run_type,
    state: r.state,
    logicalDate: iso(r.logical_date),
    dataIntervalStart: or(r.data_interval_start),
    dataIntervalEnd: or(r.data_interval_end),
    startDate: or(r.start_date),
    endDate: or(r.end_date),
  };
}

function printRuns(runs: readonly DagRunRow[]): void {
  if (runs.length === 0) {
    console.log('no runs');
    return;
  }
  const rows = runs.map((r) => [r.run_id, r.run_type, r.state, iso(r.logical_date), `${iso(r.data_interval_start)} – ${iso(r.data_interval_end)}`, iso(r.start_date), iso(r.end_date)]);
  const header = ['run id', 'type', 'state', 'logical date', 'data interval', 'start', 'end'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

/** tsflow dags next-execution DAG [--num N]. */
export const dagsNextExecution = defineCommand(
  {
    name: 'dags next-execution',
    summary: 'the logical dates of the next runs the scheduler would create for DAG',
    positionals: ['DAG'],
    options: {
      num: { type: 'string', value: 'N', description: 'how many', default: '1' },
      'dags-folder': DAGS_FOLDER,
    },
    details: [
      'Continues from the latest scheduled or backfill run, within the DAG\'s startDate, endDate and catchup, at',
      "the current time; prints None when the schedule creates no further run. Warns on stderr when the DAG is paused.",
    ],
  },
  async ({ values, positionals }, settings) => {
    const dagId = positionals[0] as string;
    const num = parseCount(values.num, '--num', 1);
    return withRuntime(settings, {}, async (runtime) => {
      const { db } = runtime.database;
      const spec = await dagSpecFor(db, dagsFolderOf(settings, values['dags-folder']), dagId);
      if (await isDagPaused(db, dagId)) printWarning(`DAG '${dagId}' is paused: the scheduler creates none of these runs until tsflow dags unpause ${dagId}`);
      const now = DateTime.utc();
      const restriction = restrictionOf(spec);
      let last = await lastAutomatedInterval(db, dagId);
      for (let i = 0; i < num; i++) {
        const timetable = spec.requireTimetable();
        const info = timetable.canBeScheduled ? timetable.nextRun(last, restriction, now) : undefined;
        if (!info) {
          console.log('None');
          break;
        }
        console.log(iso(info.logicalDate));
        last = info.dataInterval;
      }
      return 0;
    });
  },
);

/** `--from 2026-01-01` or a full ISO instant; a date or time without an offset is UTC. */
function parseDate(value: string | undefined, flag: string): DateTime {
  if (value === undefined) throw new UsageError(`tsflow dags backfill needs ${flag} DATE (an ISO 8601 date such as 2026-01-01 or 2026-01-01T06:00:00Z)`);
  const date = DateTime.fromISO(value, { zone: 'utc', setZone: true });
  if (!date.isValid) throw new UsageError(`${flag} '${value}' is not a date: write an ISO 8601 date such as 2026-01-01 or 2026-01-01T06:00:00Z`);
  return date.toUTC();
}

function parseReprocess(value: string | undefined): ReprocessBehavior {
  if (value === undefined) return 'none';
  if (!REPROCESS_BEHAVIORS.includes(value as ReprocessBehavior)) {
    throw new UsageError(`--reprocess-behavior '${value}' is not one of ${REPROCESS_BEHAVIORS.join(', ')}`);
  }
  return value as ReprocessBehavior;
}

/** `tsflow dags backfill DAG --from DATE --to DATE [--reprocess-behavior B] [--dry-run]`. */
export const dagsBackfill = defineCommand(
  {
    name: 'dags backfill',
    summary: "queue runs of DAG for its schedule's past intervals from --from to --to",
    positionals: ['DAG'],
    options: {
      from: { type: 'string', value: 'DATE', description: 'the earliest logical date (ISO 8601; no offset means UTC)' },
      to: { type: 'string', value: 'DATE', description: 'the latest logical date, inclusive' },
      'reprocess-behavior': {
        type: 'string',
        value: 'B',
        description: 'a date that has a run: none skips it; failed re-runs a failed one; completed, a failed or succeeded one',
        default: 'none',
      },
      'dry-run': { type: 'boolean', description: 'print what would happen; write nothing' },
      'dags-folder': DAGS_FOLDER,
    },
    details: [
      'Only intervals that have already ended are backfilled. A queued or running run is never redone; a re-run',
      "is cleared (its task instances run again) and becomes a backfill run. All runs are written at once; a",
      "scheduler runs them, within the DAG's maxActiveRuns.",
    ],
  },
  async ({ values, positionals }, settings: Settings) => {
    const dagId = positionals[0] as string;
    const from = parseDate(values.from, '--from');
    const to = parseDate(values.to, '--to');
    const reprocess = parseReprocess(values['reprocess-behavior']);
    const dryRun = values['dry-run'] ?? false;
    if (from > to) throw new UsageError(`--from ${iso(from)} is after --to ${iso(to)}: give a range whose start is not after its end`);
    return withRuntime(settings, {}, async (runtime) => {
      const { db } = runtime.database;
      const spec = await dagSpecFor(db, dagsFolderOf(settings, values['dags-folder']), dagId, { record: !dryRun });
      const infos = backfillIntervals(spec, from, to, DateTime.utc());
      const entries = await backfill(db, spec, infos, { from, to, reprocess, dryRun });
      printBackfill(dagId, entries, dryRun);
      if (!dryRun && (await isDagPaused(db, dagId))) printWarning(`DAG '${dagId}' is paused: its runs wait until tsflow dags unpause ${dagId}`);
      return 0;
    });
  },
);

function printBackfill(dagId: string, entries: readonly BackfillEntry[], dryRun: boolean): void {
  const would = (word: string): string => (dryRun ? `would be ${word}` : word);
  const counts = { created: 0, cleared: 0, skipped: 0 };
  for (const { info, outcome } of entries) {
    counts[outcome.action]++;
    const head = `${iso(info.logicalDate)}  ${intervalText(info.dataInterval)}`;
    if (outcome.action === 'created') console.log(`${head}  ${would('created')}: ${outcome.runId}`);
    else if (outcome.action === 'cleared') console.log(`${head}  ${would('cleared')}: ${outcome.runId} (was ${outcome.previousState}), queued again`);
    else console.log(`${head}  skipped: ${outcome.reason}`);
  }
  if (dryRun) {
    console.log(`dry run of a backfill of ${dagId}: ${counts.created} to create, ${counts.cleared} to clear, ${counts.skipped} to skip; nothing was written`);
  } else {
    console.log(`backfill of ${dagId}: ${counts.created} created, ${counts.cleared} cleared, ${counts.skipped} skipped`);
  }
}
