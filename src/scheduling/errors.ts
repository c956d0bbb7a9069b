/**
 * A timetable that cannot work as given (Airflow's `AirflowTimetableInvalid`): a cron expression that
 * does not parse, an unknown time zone, a zero interval. Thrown by the timetable constructors, which
 * know no DAG; `parseSchedule` wraps it in an `InvalidScheduleError` naming the DAG.
 */
export class InvalidTimetableError extends Error {
  override name = 'InvalidTimetableError';
}

/**
 * A DAG's scheduling options are wrong. The message names the DAG, the field and the bad value, and
 * says what to write instead: `dag 'etl': schedule '61 * * * *' is not a valid cron expression: …`.
 */
export class InvalidScheduleError extends Error {
  override name = 'InvalidScheduleError';
  readonly dagId: string;
  readonly field: string;

  constructor(dagId: string, field: string, message: string, options?: ErrorOptions) {
    super(`dag '${dagId}': ${message}`, options);
    this.dagId = dagId;
    this.field = field;
  }
}
