import { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { DagBag } from '../dag-bag/dag-bag.ts';
import type { DagSpec } from '../dag-bag/serialized-dag.ts';
import type { Db } from '../db/database.ts';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import { writeDeferral } from '../db/deferral.ts';
import { listScheduledNewTries } from '../db/task-instances.ts';
import type { Dag } from '../sdk/dag.ts';
import type { JsonObject } from '../sdk/json.ts';
import { startsFromTrigger, type SensorTriggerContext } from '../sdk/sensors/base-sensor.ts';

/** What the scheduler needs to defer a new try itself: the serialized trigger, the resume method, the timeout. */
export interface BuiltStartDeferral {
  readonly classpath: string;
  readonly kwargs: JsonObject;
  readonly method: string;
  readonly timeoutSeconds: number;
}

/** The run facts a sensor's `trigger()` may use, as plain data (they may cross a process boundary). */
export interface StartTriggerRequest {
  readonly dagId: string;
  readonly runId: string;
  readonly taskId: string;
  readonly fileloc: string;
  readonly tryNumber: number;
  readonly logicalDate: string;
  readonly conf: JsonObject;
}

/** A custom timetable's `nextRun` question, as plain data (ISO instants, UTC). */
export interface NextRunRequest {
  readonly dagId: string;
  readonly fileloc: string;
  readonly last: { start: string; end: string } | null;
  readonly restriction: { earliest: string | null; latest: string | null; catchup: boolean };
  readonly now: string;
}

/** Its answer: a run's interval and when it is due. */
export interface PlannedRun {
  readonly start: string;
  readonly end: string;
  readonly runAfter: string;
}

/**
 * Builds a sensor's start deferral. The trigger comes from the sensor's own code, so the scheduler
 * asks whoever has that code loaded: a DAG bag in this process (tests, embedding) or a child process
 * (`DagCodeHost`), so a DAG file's code never runs in the scheduler's process.
 */
export interface StartTriggerBuilder {
  build(request: StartTriggerRequest, log: Logger): Promise<BuiltStartDeferral | undefined>;
  /** Evaluates a custom timetable (the DAG's own code) for the scheduler. */
  nextRun?(request: NextRunRequest): Promise<PlannedRun | undefined>;
  close?(): Promise<void>;
}

/** Builds start deferrals from a DAG bag loaded in this process. */
export class InProcessStartTriggerBuilder implements StartTriggerBuilder {
  readonly #bag: DagBag;
  constructor(bag: DagBag) {
    this.#bag = bag;
  }

  build(request: StartTriggerRequest, log: Logger): Promise<BuiltStartDeferral | undefined> {
    return Promise.resolve(buildStartDeferral(this.#bag.dags.get(request.dagId)?.tasks.get(request.taskId), request, log));
  }

  nextRun(request: NextRunRequest): Promise<PlannedRun | undefined> {
    return Promise.resolve(planNextRun(this.#bag.dags.get(request.dagId), request));
  }
}

/** Asks a DAG's own timetable for its next run; shared by the in-process and child-process hosts. */
export function planNextRun(dag: Dag | undefined, request: NextRunRequest): PlannedRun | undefined {
  if (!dag) throw new Error(`DAG '${request.dagId}' is not defined in ${request.fileloc} any more`);
  const utc = (iso: string): DateTime => DateTime.fromISO(iso, { zone: 'utc' });
  const { earliest, latest, catchup } = request.restriction;
  const info = dag.timetable.nextRun(
    request.last ? { start: utc(request.last.start), end: utc(request.last.end) } : undefined,
    { catchup, ...(earliest && { earliest: utc(earliest) }), ...(latest && { latest: utc(latest) }) },
    utc(request.now),
  );
  if (!info) return undefined;
  const iso = (d: DateTime): string => d.toUTC().toISO() as string;
  return { start: iso(info.dataInterval.start), end: iso(info.dataInterval.end), runAfter: iso(info.runAfter) };
}

/** Calls a sensor's `startDeferral` for one new try; shared by the in-process and child-process builders. */
export function buildStartDeferral(task: unknown, request: StartTriggerRequest, log: Logger): BuiltStartDeferral | undefined {
  if (!startsFromTrigger(task)) return undefined;
  const context: SensorTriggerContext = {
    dagId: request.dagId,
    runId: request.runId,
    taskId: request.taskId,
    tryNumber: request.tryNumber,
    logicalDate: DateTime.fromISO(request.logicalDate, { zone: 'utc' }),
    startDate: DateTime.utc(),
    conf: request.conf,
    log,
  };
  const deferral = task.startDeferral(context);
  if (!deferral) return undefined;
  const [classpath, kwargs] = deferral.trigger.serialize();
  return { classpath, kwargs, method: deferral.method, timeoutSeconds: deferral.timeout.as('seconds') };
}

export interface StartFromTriggerDeps {
  db: Db;
  /** The serialized DAGs the scheduler knows. */
  dags: () => Iterable<DagSpec>;
  builder: StartTriggerBuilder;
  logger: Logger;
}

/**
 * Airflow's `start_from_trigger`, as one step of a scheduler pass (after task instances become
 * `scheduled`, before any is enqueued): each new try of a sensor with `startFromTrigger` goes
 * straight to `deferred` with its trigger, so it never waits for, nor occupies, an executor slot.
 * Resumes (after the trigger fired, failed or timed out) are not touched: they run on a worker.
 */
export class StartFromTrigger {
  readonly #deps: StartFromTriggerDeps;
  readonly #log: Logger;
  /** Tries whose trigger could not be built; they are left to a worker, whose run fails with the error. */
  #unbuildable = new Set<string>();

  constructor(deps: StartFromTriggerDeps) {
    this.#deps = deps;
    this.#log = deps.logger.child({ step: 'start-from-trigger' });
  }

  /** Defers every scheduled new try of such sensors; returns those it deferred. */
  async run(): Promise<{ key: TaskInstanceKey; tryNumber: number }[]> {
    const sensors = new Map<string, { spec: DagSpec; executionTimeoutSeconds: number | null; priorityWeight: number }>();
    for (const spec of this.#deps.dags()) {
      for (const task of spec.tasks.values()) {
        if (task.startFromTrigger) {
          sensors.set(`${spec.dagId}\0${task.taskId}`, { spec, executionTimeoutSeconds: task.executionTimeoutSeconds, priorityWeight: task.priorityWeight });
        }
      }
    }
    if (sensors.size === 0) return [];
    const tasks = [...sensors.keys()].map((id) => {
      const [dagId, taskId] = id.split('\0') as [string, string];
      return { dagId, taskId };
    });
    const candidates = await listScheduledNewTries(this.#deps.db, tasks);
    const started: { key: TaskInstanceKey; tryNumber: number }[] = [];
    const stillUnbuildable = new Set<string>();
    for (const candidate of candidates) {
      const { key } = candidate;
      const attempt = `${tiKeyString(key)}#${candidate.tryNumber + 1}`;
      if (this.#unbuildable.has(attempt)) {
        stillUnbuildable.add(attempt);
        continue;
      }
      const sensor = sensors.get(`${key.dagId}\0${key.taskId}`);
      if (!sensor) continue;
      const log = this.#log.child({ dagId: key.dagId, runId: key.runId, taskId: key.taskId });
      let built: BuiltStartDeferral | undefined;
      try {
        built = await this.#deps.builder.build(
          {
            ...key,
            fileloc: sensor.spec.data.fileloc,
            tryNumber: candidate.tryNumber + 1,
            logicalDate: candidate.logicalDate.toISOString(),
            conf: candidate.conf,
          },
          log,
        );
        if (!built) continue;
      } catch (error) {
        stillUnbuildable.add(attempt);
        log.error({ err: error }, 'could not build the trigger to start from; the task will run on a worker instead');
        continue;
      }
      const { executionTimeoutSeconds } = sensor;
      const result = await writeDeferral(this.#deps.db, key, {
        fence: { scheduledNewTry: true },
        trigger: { classpath: built.classpath, kwargs: built.kwargs, priorityWeight: sensor.priorityWeight },
        nextMethod: built.method,
        nextKwargs: {},
        timeoutSeconds: built.timeoutSeconds,
        executionTimeoutSeconds,
      });
      if (!result) continue; // enqueued or changed meanwhile
      log.info({ triggerId: result.triggerId, classpath: built.classpath, tryNumber: result.tryNumber }, 'started in the triggerer (startFromTrigger)');
      started.push({ key, tryNumber: result.tryNumber });
    }
    this.#unbuildable = stillUnbuildable;
    return started;
  }
}
