import { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { DagBag } from '../dag-bag/dag-bag.ts';
import type { Db } from '../db/database.ts';
import { tiKeyString, type TaskInstanceKey } from '../db/schema.ts';
import { writeDeferral } from '../db/deferral.ts';
import { listScheduledNewTries } from '../db/task-instances.ts';
import type { JsonObject } from '../sdk/json.ts';
import { startsFromTrigger, type StartDeferral, type TriggerStartingSensor } from '../sdk/sensors/base-sensor.ts';

export interface StartFromTriggerDeps {
  db: Db;
  dagBag: DagBag;
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
    const sensors = new Map<string, TriggerStartingSensor>();
    for (const dag of this.#deps.dagBag.dags.values()) {
      for (const task of dag.tasks.values()) {
        if (startsFromTrigger(task)) sensors.set(`${dag.dagId}\0${task.taskId}`, task);
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
      const log = this.#log.child({ dagId: key.dagId, runId: key.runId, taskId: key.taskId });
      let deferral: StartDeferral | undefined;
      let serialized: [string, JsonObject];
      try {
        deferral = sensor?.startDeferral({
          ...key,
          tryNumber: candidate.tryNumber + 1,
          logicalDate: DateTime.fromJSDate(candidate.logicalDate, { zone: 'utc' }),
          startDate: DateTime.utc(),
          conf: candidate.conf,
          log,
        });
        if (!deferral || !sensor) continue;
        serialized = deferral.trigger.serialize();
      } catch (error) {
        stillUnbuildable.add(attempt);
        log.error({ err: error }, 'could not build the trigger to start from; the task will run on a worker instead');
        continue;
      }
      const [classpath, kwargs] = serialized;
      const { executionTimeout } = sensor.settings;
      const result = await writeDeferral(this.#deps.db, key, {
        fence: { scheduledNewTry: true },
        trigger: { classpath, kwargs, priorityWeight: sensor.settings.priorityWeight },
        nextMethod: deferral.method,
        nextKwargs: {},
        timeoutSeconds: deferral.timeout.as('seconds'),
        executionTimeoutSeconds: executionTimeout ? executionTimeout.as('seconds') : null,
      });
      if (!result) continue; // enqueued or changed meanwhile
      log.info({ triggerId: result.triggerId, classpath, tryNumber: result.tryNumber }, 'started in the triggerer (startFromTrigger)');
      started.push({ key, tryNumber: result.tryNumber });
    }
    this.#unbuildable = stillUnbuildable;
    return started;
  }
}
