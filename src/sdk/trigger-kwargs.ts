import { toDuration, type DurationInput } from './duration.ts';
import { InvalidTriggerKwargsError } from './errors.ts';

/*
 * Helpers for trigger constructors: what they refuse is an `InvalidTriggerKwargsError` naming the
 * trigger, the field and the value, so a DAG fails at import with a message that says what to fix.
 */

/** Refuses fields the trigger does not know (a typo would otherwise be ignored silently). */
export function refuseUnknownFields(kwargs: object, known: readonly string[], label: string): void {
  const unknown = Object.keys(kwargs).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new InvalidTriggerKwargsError(`${label} has no field '${unknown[0]}': the fields are ${known.join(', ')}`);
  }
}

/** A duration as the number of seconds stored in the trigger row; `positive` refuses 0. */
export function durationSeconds(input: DurationInput, label: string, positive = false): number {
  let seconds: number;
  try {
    seconds = toDuration(input, label).toMillis() / 1000;
  } catch (error) {
    throw new InvalidTriggerKwargsError((error as Error).message, { cause: error });
  }
  if (positive && seconds <= 0) throw new InvalidTriggerKwargsError(`${label} must be more than 0 seconds, got ${seconds}`);
  return seconds;
}
