import { IANAZone } from 'luxon';
import { InvalidTimetableError } from './errors.ts';

/** Throws unless `name` is an IANA time zone luxon (and so the platform's ICU data) knows. */
export function assertTimezone(name: string): void {
  if (name.toUpperCase() === 'UTC' || IANAZone.isValidZone(name)) return;
  throw new InvalidTimetableError(
    `'${name}' is not a known IANA time zone; write a name such as 'UTC', 'Europe/Amsterdam' or 'America/New_York'`,
  );
}
