export { ContinuousTimetable, NullTimetable, OnceTimetable } from './trivial-timetables.ts';
export { CronDataIntervalTimetable } from './cron-data-interval-timetable.ts';
export { DeltaDataIntervalTimetable } from './delta-data-interval-timetable.ts';
export { deserializeTimetable, type CustomTimetableLoader } from './deserialize-timetable.ts';
export { InvalidScheduleError, InvalidTimetableError } from './errors.ts';
export { parseSchedule, type ParseScheduleOptions, type ScheduleInput } from './parse-schedule.ts';
export { CRON_PRESETS } from './presets.ts';
export { validateScheduleOptions, type CompiledSchedule, type ScheduleOptions } from './validate-schedule-options.ts';
export { isTimetable, type DataInterval, type RunInfo, type SerializedTimetable, type TimeRestriction, type Timetable } from './timetable.ts';
