/** The task ran past its `executionTimeout`: the reason its stop signal carries. */
export class TaskExecutionTimeout extends Error {
  override name = 'TaskExecutionTimeout';
}

/** The task instance stopped being `running` this try while the task ran (cleared, failed as a zombie). */
export class TaskInstanceChangedError extends Error {
  override name = 'TaskInstanceChangedError';
}

/**
 * The try's outcome could not be written: the database stayed unreachable until the worker was told to
 * stop, or refused the write outright. The task instance is left `running`; the scheduler fails it as
 * lost (its executor reports the run broken, or its heartbeat goes stale).
 */
export class OutcomeNotRecordedError extends Error {
  override name = 'OutcomeNotRecordedError';
}
