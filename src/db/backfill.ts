import { sql } from 'kysely';
import type { DateTime } from 'luxon';
import type { DagSpec } from '../dag-bag/serialized-dag.ts';
import type { RunInfo } from '../scheduling/timetable.ts';
import { clearInTransaction } from './clear.ts';
import type { Db } from './database.ts';
import { runIdFor } from './next-dagrun.ts';
import { Channels, notify } from './protocol.ts';
import type { DagRunState, DagRunType } from './schema.ts';

/*
 * Backfill (Airflow 3's `models/backfill.py`): every interval of a DAG's timetable whose logical date
 * lies in [from, to] and that has already ended becomes a queued `backfill` run, all written in one
 * transaction; the scheduler runs them. A logical date that already has a run is skipped, or that run
 * is cleared and queued again, as the reprocess behaviour says; a queued or running run is never touched.
 */

export const REPROCESS_BEHAVIORS = ['none', 'failed', 'completed'] as const;
export type ReprocessBehavior = (typeof REPROCESS_BEHAVIORS)[number];

/** More intervals than this in one backfill is almost certainly a mistake (a minutely cron over years). */
export const MAX_BACKFILL_RUNS = 10_000;

export class BackfillError extends Error {
  override name = 'BackfillError';
}

export interface BackfillRequest {
  readonly from: DateTime;
  readonly to: DateTime;
  /** @default 'none' */
  readonly reprocess?: ReprocessBehavior;
  /** Plan only: report what would happen, write nothing. */
  readonly dryRun?: boolean;
}

export type BackfillOutcome =
  | { readonly action: 'created'; readonly runId: string }
  | { readonly action: 'cleared'; readonly runId: string; readonly previousState: DagRunState }
  | { readonly action: 'skipped'; readonly runId: string; readonly reason: string };

export interface BackfillEntry {
  readonly info: RunInfo;
  readonly outcome: BackfillOutcome;
}

/** The intervals a backfill of [from, to] covers: logical date within both bounds and the DAG's start and end dates, interval ended by `now`. */
export function backfillIntervals(spec: DagSpec, from: DateTime, to: DateTime, now: DateTime): RunInfo[] {
  if (from > to) throw new BackfillError(`--from ${from.toISO()} is after --to ${to.toISO()}: give a range whose start is not after its end`);
  const timetable = spec.requireTimetable();
  if (!timetable.periodic) {
    const what = timetable.canBeScheduled ? `a non-periodic schedule (${spec.data.timetableSummary})` : 'no schedule (schedule: null)';
    throw new BackfillError(`DAG '${spec.dagId}' has ${what}, so it has no intervals to backfill: trigger runs with tsflow dags trigger ${spec.dagId}`);
  }
  if (from >= now && to >= now) throw new BackfillError(`--from and --to are both in the future: a backfill only runs intervals that have already ended`);
  // Within the DAG's own startDate and endDate too: no run is made for a period the DAG does not cover.
  const earliest = spec.startDate !== undefined && spec.startDate > from ? spec.startDate : from;
  const latest = spec.endDate !== undefined && spec.endDate < to ? spec.endDate : to;
  const restriction = { earliest, latest, catchup: true };
  const infos: RunInfo[] = [];
  let info = timetable.nextRun(undefined, restriction, now);
  while (info !== undefined && info.logicalDate <= latest && info.dataInterval.end < now) {
    if (infos.length >= MAX_BACKFILL_RUNS) {
      throw new BackfillError(`the range holds more than ${MAX_BACKFILL_RUNS} intervals of DAG '${spec.dagId}': backfill a shorter range at a time`);
    }
    infos.push(info);
    info = timetable.nextRun(info.dataInterval, restriction, now);
  }
  if (infos.length === 0) {
    throw new BackfillError(
      `no interval of DAG '${spec.dagId}' (${spec.data.timetableSummary}) has its logical date between ${from.toISO()} and ${to.toISO()}, ` +
        `within the DAG's startDate ${spec.data.startDate ?? '(none)'} and endDate ${spec.data.endDate ?? '(none)'}, and has ended: widen the range`,
    );
  }
  return infos;
}

interface ExistingRun {
  run_id: string;
  run_type: DagRunType;
  state: DagRunState;
  logical_date: Date;
}

function decide(existing: ExistingRun | undefined, info: RunInfo, reprocess: ReprocessBehavior): BackfillOutcome {
  if (!existing) return { action: 'created', runId: runIdFor('backfill', info.logicalDate) };
  const { run_id: runId, state } = existing;
  if (state === 'queued' || state === 'running') return { action: 'skipped', runId, reason: `run ${runId} is ${state}` };
  if (reprocess === 'none') return { action: 'skipped', runId, reason: `run ${runId} exists (${state}) and --reprocess-behavior is none` };
  if (reprocess === 'failed' && state !== 'failed') return { action: 'skipped', runId, reason: `run ${runId} succeeded and --reprocess-behavior is failed` };
  return { action: 'cleared', runId, previousState: state };
}

/**
 * Plans a backfill and, unless `dryRun`, writes it in ONE transaction with `NOTIFY tsflow_ti 'run'`:
 * existing runs at the logical dates are locked (FOR UPDATE) so a run finishing meanwhile is judged
 * by its final state; new runs are inserted in one statement, and one that a scheduler created
 * meanwhile (the unique logical-date index) is reported as skipped. Manual runs do not count as a
 * logical date's run: tsflow lets a manual run share a logical date with a scheduled one.
 */
export async function backfill(db: Db, spec: DagSpec, infos: readonly RunInfo[], request: BackfillRequest): Promise<BackfillEntry[]> {
  const reprocess = request.reprocess ?? 'none';
  const dates = infos.map((i) => i.logicalDate.toJSDate());
  const plan = async (trx: Db, lock: boolean): Promise<BackfillEntry[]> => {
    const { rows } = await sql<ExistingRun>`
      SELECT run_id, run_type, state, logical_date FROM dag_run
      WHERE dag_id = ${spec.dagId} AND run_type <> 'manual' AND logical_date = ANY(${dates}::timestamptz[])
      ${lock ? sql`FOR UPDATE` : sql``}`.execute(trx);
    const byDate = new Map(rows.map((r) => [r.logical_date.getTime(), r]));
    return infos.map((info) => ({ info, outcome: decide(byDate.get(info.logicalDate.toMillis()), info, reprocess) }));
  };
  if (request.dryRun) return plan(db, false);

  return db.transaction().execute(async (trx) => {
    const entries = await plan(trx, true);
    const retries = new Map([...spec.tasks.values()].map((t) => [t.taskId, t.retries]));
    let cancelledTriggers = false;
    for (const { outcome } of entries) {
      if (outcome.action !== 'cleared') continue;
      const result = await clearInTransaction(trx, { dagId: spec.dagId, runId: outcome.runId, taskIds: [], retries });
      cancelledTriggers ||= result.cancelledTriggers;
    }
    const clearedIds = entries.flatMap((e) => (e.outcome.action === 'cleared' ? [e.outcome.runId] : []));
    if (clearedIds.length > 0) {
      // As Airflow's backfill does: the re-run belongs to the backfill now, and starts afresh.
      await trx
        .updateTable('dag_run')
        .set({ state: 'queued', run_type: 'backfill', start_date: null, end_date: null })
        .where('dag_id', '=', spec.dagId)
        .where('run_id', 'in', clearedIds)
        .execute();
    }
    const fresh = entries.filter((e) => e.outcome.action === 'created');
    let landed = new Set<string>();
    if (fresh.length > 0) {
      const { rows } = await sql<{ run_id: string }>`
        INSERT INTO dag_run (dag_id, run_id, state, run_type, conf, logical_date, data_interval_start, data_interval_end)
        SELECT ${spec.dagId}, r.run_id, 'queued', 'backfill', '{}'::jsonb, r.logical_date, r.start_, r.end_
        FROM unnest(${fresh.map((e) => e.outcome.runId)}::text[], ${fresh.map((e) => e.info.logicalDate.toJSDate())}::timestamptz[],
                    ${fresh.map((e) => e.info.dataInterval.start.toJSDate())}::timestamptz[], ${fresh.map((e) => e.info.dataInterval.end.toJSDate())}::timestamptz[])
          AS r(run_id, logical_date, start_, end_)
        ON CONFLICT DO NOTHING
        RETURNING run_id`.execute(trx);
      landed = new Set(rows.map((r) => r.run_id));
    }
    if (landed.size > 0 || clearedIds.length > 0) await notify(trx, Channels.ti, 'run');
    if (cancelledTriggers) await notify(trx, Channels.trigger, 'cancel');
    return entries.map((e) =>
      e.outcome.action === 'created' && !landed.has(e.outcome.runId)
        ? { info: e.info, outcome: { action: 'skipped', runId: e.outcome.runId, reason: 'a run for this logical date was created meanwhile' } }
        : e,
    );
  });
}
