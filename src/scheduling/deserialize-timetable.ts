import { CronDataIntervalTimetable } from './cron-data-interval-timetable.ts';
import { DeltaDataIntervalTimetable } from './delta-data-interval-timetable.ts';
import { InvalidTimetableError } from './errors.ts';
import type { SerializedTimetable, Timetable } from './timetable.ts';
import { ContinuousTimetable, NullTimetable, OnceTimetable } from './trivial-timetables.ts';

/** Rebuilds a custom timetable from its `{ kind: 'custom', name, data }`; the caller knows its classes. */
export type CustomTimetableLoader = (name: string, data: unknown) => Timetable;

/** Turns a stored `serialize()` result back into a timetable (the inverse of `Timetable.serialize`). */
export function deserializeTimetable(json: SerializedTimetable, loadCustom?: CustomTimetableLoader): Timetable {
  switch (json.kind) {
    case 'cron':
      return new CronDataIntervalTimetable(json.expression, json.timezone);
    case 'delta':
      return new DeltaDataIntervalTimetable(json.seconds);
    case 'once':
      return new OnceTimetable();
    case 'continuous':
      return new ContinuousTimetable();
    case 'null':
      return new NullTimetable();
    case 'custom':
      if (loadCustom === undefined) {
        throw new InvalidTimetableError(`custom timetable '${json.name}' cannot be rebuilt without a loader; pass one to deserializeTimetable`);
      }
      return loadCustom(json.name, json.data);
    default:
      throw new InvalidTimetableError(`unknown timetable kind in ${JSON.stringify(json)}; expected cron, delta, once, continuous, null or custom`);
  }
}
