import { DateTime } from 'luxon';
import { toDuration, type DurationInput } from '../src/sdk/duration.ts';
import { InvalidTriggerKwargsError } from '../src/sdk/errors.ts';
import { DateTimeTrigger } from './date-time-trigger.ts';

export interface TimeDeltaTriggerKwargs {
  /** How long from now: a luxon `Duration`, `{ seconds: 30 }`, `'PT30S'`, or a number of seconds. */
  delta: DurationInput;
}

/**
 * Fires `delta` after it was created. It serialises as a `DateTimeTrigger` at the absolute moment,
 * so a triggerer restart (or a failover) never extends the wait.
 */
export class TimeDeltaTrigger extends DateTimeTrigger {
  readonly delta: DurationInput;

  constructor(kwargs: TimeDeltaTriggerKwargs) {
    let moment: DateTime;
    try {
      moment = DateTime.utc().plus(toDuration(kwargs?.delta, 'TimeDeltaTrigger delta'));
    } catch (error) {
      throw new InvalidTriggerKwargsError((error as Error).message, { cause: error });
    }
    super({ moment });
    this.delta = kwargs.delta;
  }

  override serialize(): [string, { moment: string }] {
    return [DateTimeTrigger.classpath, { moment: this.kwargs.moment }];
  }
}
