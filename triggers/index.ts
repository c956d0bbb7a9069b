/** The built-in triggers. `import { TimeDeltaTrigger } from 'tsflow/triggers'`. */
export { DateTimeTrigger, type DateTimeTriggerKwargs, type DateTimeEventPayload } from './date-time-trigger.ts';
export { TimeDeltaTrigger, type TimeDeltaTriggerKwargs } from './time-delta-trigger.ts';
export {
  FileExistsTrigger,
  MAX_REPORTED_PATHS,
  type FileExistsTriggerKwargs,
  type FileExistsTriggerRow,
  type FileExistsEventPayload,
  type FileScan,
} from './file-exists-trigger.ts';
export {
  HttpPollTrigger,
  HttpPollError,
  MAX_PAYLOAD_BYTES,
  MAX_READ_BYTES,
  REQUESTS_PER_HOST,
  type HttpMethod,
  type HttpPollTriggerKwargs,
  type HttpPollTriggerRow,
  type HttpPollEventPayload,
  type HttpPoll,
  type HttpPollDeps,
} from './http-poll-trigger.ts';
export {
  ExternalEventTrigger,
  DEFAULT_EVENT_SINCE_SECONDS,
  eventPayload,
  type ExternalEventTriggerKwargs,
  type ExternalEventTriggerRow,
  type ExternalEventPayload,
} from './external-event-trigger.ts';
export { DagStateTrigger, type DagStateTriggerKwargs, type DagStateEventPayload } from './dag-state-trigger.ts';
export { WorkflowTrigger, type WorkflowTriggerKwargs, type WorkflowEventPayload } from './workflow-trigger.ts';
export { HITLTrigger, type HITLTriggerKwargs, type HITLEventPayload } from './hitl-trigger.ts';
