import { BaseOperator, dag, type JsonObject, type TaskContext } from 'tsflow';
import { DateTimeTrigger } from 'tsflow/triggers';
import { StampTrigger } from '../triggers/bench-triggers.ts';

/**
 * The benchmarks run thousands of runs and tasks of one DAG at once; Airflow's defaults (16 active
 * runs, 16 active tasks per DAG) would measure the limits, not the engine.
 */
const UNLIMITED = { maxActiveRuns: 1_000_000, maxActiveTasks: 1_000_000 };

/** Defers to a StampTrigger: the pickup benchmark times defer commit → trigger running. */
class PickupProbe extends BaseOperator<JsonObject> {
  override execute(): never {
    this.defer({ trigger: new StampTrigger({ afterMs: 150 }) });
  }

  executeComplete(): JsonObject {
    return { resumed: true };
  }
}

/** Defers to a time trigger that is already due: the due benchmark times defer commit → event commit. */
class DueProbe extends BaseOperator<JsonObject> {
  override execute(): never {
    this.defer({ trigger: new DateTimeTrigger({ moment: new Date() }) });
  }

  executeComplete(): JsonObject {
    return { resumed: true };
  }
}

/** Resumed by the resume benchmark: records when executeComplete started. */
class ResumeProbe extends BaseOperator<JsonObject> {
  override execute(): never {
    throw new Error('the resume benchmark seeds this task already deferred');
  }

  executeComplete(_context: TaskContext): JsonObject {
    return { startedAt: Date.now() };
  }
}

class Noop extends BaseOperator<null> {
  override execute(): null {
    return null;
  }
}

export const pickupBench = dag({ dagId: 'pickup_bench', ...UNLIMITED }, () => {
  new PickupProbe({ taskId: 'probe' });
});

export const dueBench = dag({ dagId: 'due_bench', ...UNLIMITED }, () => {
  new DueProbe({ taskId: 'probe' });
});

export const resumeBench = dag({ dagId: 'resume_bench', ...UNLIMITED }, () => {
  new ResumeProbe({ taskId: 'wait' });
});

/** Started before the resume benchmark so its workers are warm, as in a running deployment. */
export const warmUp = dag({ dagId: 'warm_up', ...UNLIMITED }, () => {
  for (let i = 0; i < 8; i++) new Noop({ taskId: `noop_${i}` });
});

/** Resumed by the chaos drill: retried when its worker dies with a killed scheduler. */
class ChaosProbe extends BaseOperator<JsonObject> {
  /** The drill seeds it already deferred: only a retry (its worker died with a scheduler) starts here. */
  override execute(): JsonObject {
    return { startedAt: Date.now(), retried: true };
  }

  executeComplete(): JsonObject {
    return { startedAt: Date.now() };
  }
}

export const chaosBench = dag({ dagId: 'chaos_bench', ...UNLIMITED }, () => {
  new ChaosProbe({ taskId: 'wait', retries: 3, retryDelay: 1 });
});

/**
 * The executor benchmark's wave of independent no-op tasks (run by LocalExecutor workers or tsflow
 * workers): 400, and 20 for the smoke run. Two DAGs rather than a size from the environment: a
 * process that imported this file earlier (another scenario, in the same test process) keeps the
 * size it read then, and its runs would ask workers for tasks their DAG does not have.
 */
export const executorBench = dag({ dagId: 'executor_bench', ...UNLIMITED }, () => {
  for (let i = 0; i < 400; i++) new Noop({ taskId: `noop_${i}` });
});

export const executorBenchSmoke = dag({ dagId: 'executor_bench_smoke', ...UNLIMITED }, () => {
  for (let i = 0; i < 20; i++) new Noop({ taskId: `noop_${i}` });
});

/** The idle pick-up benchmark: one no-op task per run, one run at a time. */
export const executorIdle = dag({ dagId: 'executor_idle', ...UNLIMITED }, () => {
  new Noop({ taskId: 'noop' });
});
