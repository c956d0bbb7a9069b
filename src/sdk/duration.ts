import { Duration, type DurationLikeObject } from 'luxon';

/**
 * How long something lasts: a luxon `Duration`, an object such as `{ minutes: 5 }`, an ISO 8601
 * duration such as `'PT5M'`, or a number of **seconds** (Airflow's convention for `poke_interval`
 * and `timeout`).
 */
export type DurationInput = Duration | DurationLikeObject | string | number;

/** Converts a `DurationInput` to a valid, non-negative luxon `Duration`, naming `label` when it cannot. */
export function toDuration(input: DurationInput, label: string): Duration {
  let duration: Duration;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) throw new RangeError(`${label} must be a finite number of seconds, got ${input}`);
    duration = Duration.fromMillis(Math.round(input * 1000));
  } else if (typeof input === 'string') {
    duration = Duration.fromISO(input);
    if (!duration.isValid) {
      throw new RangeError(`${label} '${input}' is not an ISO 8601 duration; write e.g. 'PT30S' or { seconds: 30 }`);
    }
  } else if (Duration.isDuration(input)) {
    duration = input;
  } else {
    duration = Duration.fromObject(input);
  }
  if (!duration.isValid) throw new RangeError(`${label} is not a valid duration: ${duration.invalidExplanation ?? ''}`);
  if (duration.toMillis() < 0) throw new RangeError(`${label} must not be negative, got ${duration.toISO()}`);
  return duration;
}
