import type { DateTime } from 'luxon';
import { pythonIsoformat } from './run-context.ts';

/*
 * A date as a template sees it (Airflow hands templates pendulum DateTimes): `{{ logical_date }}`
 * prints Python's isoformat, `{{ logical_date.strftime('%Y/%m') }}` formats it, and the parts are
 * attributes (`.year`, `.month`, …). Always UTC, as the run's dates are stored.
 */
export class TemplateDate {
  readonly #date: DateTime;

  constructor(date: DateTime) {
    this.#date = date.toUTC();
  }

  get year(): number {
    return this.#date.year;
  }

  get month(): number {
    return this.#date.month;
  }

  get day(): number {
    return this.#date.day;
  }

  get hour(): number {
    return this.#date.hour;
  }

  get minute(): number {
    return this.#date.minute;
  }

  get second(): number {
    return this.#date.second;
  }

  /** `2026-01-01T00:00:00+00:00`, as `str(datetime)` prints it in Airflow templates (with a `T`, as pendulum does). */
  toString(): string {
    return pythonIsoformat(this.#date);
  }

  isoformat(): string {
    return pythonIsoformat(this.#date);
  }

  /** Seconds since the epoch (Python's `timestamp()`). */
  timestamp(): number {
    return this.#date.toSeconds();
  }

  /** Python's `strftime` for the common directives (%Y %m %d %H %M %S %f %y %j %a %A %b %B %z %Z %%); an unknown one is an error. */
  strftime(format: string): string {
    return format.replace(/%(.)/g, (_, directive: string) => {
      const d = this.#date;
      switch (directive) {
        case 'Y': return String(d.year).padStart(4, '0');
        case 'm': return pad(d.month);
        case 'd': return pad(d.day);
        case 'H': return pad(d.hour);
        case 'M': return pad(d.minute);
        case 'S': return pad(d.second);
        case 'f': return String(d.millisecond * 1000).padStart(6, '0');
        case 'y': return pad(d.year % 100);
        case 'j': return String(d.ordinal).padStart(3, '0');
        case 'a': return d.setLocale('en').toFormat('ccc');
        case 'A': return d.setLocale('en').toFormat('cccc');
        case 'b': return d.setLocale('en').toFormat('LLL');
        case 'B': return d.setLocale('en').toFormat('LLLL');
        case 'z': return '+0000';
        case 'Z': return 'UTC';
        case '%': return '%';
        default: throw new Error(`strftime: the directive %${directive} is not supported (supported: %Y %m %d %H %M %S %f %y %j %a %A %b %B %z %Z %%)`);
      }
    });
  }
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
