/** The built-in triggers. `import { TimeDeltaTrigger } from 'tsflow/triggers'`. */
export { DateTimeTrigger, type DateTimeTriggerKwargs, type DateTimeEventPayload } from './date-time-trigger.ts';
export { TimeDeltaTrigger, type TimeDeltaTriggerKwargs } from './time-delta-trigger.ts';
