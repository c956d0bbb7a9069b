/**
 * What a DAG author imports: `import { dag, chain, BaseOperator, TimeDeltaSensor } from 'tsflow'`.
 * Nothing here reaches the database or the daemons.
 */
export { dag, Dag, type DagOptions, type DateInput, TaskNotFoundError } from './dag.ts';
export { param, InvalidParamsError, type Param, type ParamsInput } from './params.ts';
export {
  CronDataIntervalTimetable,
  DeltaDataIntervalTimetable,
  InvalidScheduleError,
  InvalidTimetableError,
  type DataInterval,
  type RunInfo,
  type ScheduleInput,
  type SerializedTimetable,
  type TimeRestriction,
  type Timetable,
} from '../scheduling/index.ts';
export { chain } from './chain.ts';
export type { Dependencies, DependencyNode, DependencyTarget } from './dependencies.ts';
export { task, TaskFlowOperator, TaskFlowSensor, type SensorReturn, type TaskFunction, type TaskFunctionOptions, type TaskSensorOptions, type XComArgsOf } from './taskflow.ts';
export { XComArg, XComNotFound, isXComArg } from './xcom-arg.ts';
export { taskGroup, TaskGroup, type TaskGroupOptions } from './task-group.ts';
export { BashOperator, type BashOperatorOptions } from './bash-operator.ts';
export { MappedOperator } from './mapped-operator.ts';
export {
  BaseOperator,
  DEFAULT_POOL,
  FAIL_METHOD,
  type BaseOperatorOptions,
  type ExpandArgs,
  type OperatorPartial,
  type PartialOptions,
  type TaskCallback,
  type TaskDefaults,
  type TaskSettings,
} from './base-operator.ts';
export { TRIGGER_RULES, type TriggerRule } from './trigger-rule.ts';
export { BranchOperator, type BranchChoice, type BranchOperatorOptions } from './operators/branch.ts';
export { TaskFlowBranchOperator, type TaskBranchOptions } from './operators/taskflow-branch.ts';
export { ShortCircuitOperator, type ShortCircuitOperatorOptions } from './operators/short-circuit.ts';
export { LatestOnlyOperator } from './operators/latest-only.ts';
export type { Connection, TaskContext, TaskRuntimeDefaults, VariableOptions } from './context.ts';
export { maskSecret } from '../secrets/masker.ts';
export { TaskDeferred, type DeferOptions } from './task-deferred.ts';
export { BaseTrigger, TriggerEvent, type ExternalEvent, type TriggerClass, type TriggerLogger, type TriggerRun, type TriggerRuntime } from './trigger.ts';
export {
  SkipTask,
  RescheduleTask,
  FailTask,
  TaskDeferralError,
  TaskDeferralTimeout,
  SensorTimeout,
  InvalidTriggerKwargsError,
} from './errors.ts';
export { toDuration, type DurationInput } from './duration.ts';
export type { JsonObject, JsonValue, JsonPrimitive } from './json.ts';
export {
  BaseSensorOperator,
  type BaseSensorOptions,
  type PokeResult,
  type SensorMode,
  type SensorTriggerContext,
  type StartDeferral,
} from './sensors/base-sensor.ts';
export {
  TimeDeltaSensor,
  DateTimeSensor,
  type TimeDeltaSensorOptions,
  type DateTimeSensorOptions,
} from './sensors/time-sensors.ts';
export { FileSensor, type FileSensorOptions } from './sensors/file-sensor.ts';
export { HttpSensor, type HttpSensorOptions } from './sensors/http-sensor.ts';
export { EventSensor, type EventSensorOptions } from './sensors/event-sensor.ts';
export type { HttpExpectation, JsonFieldCondition } from './http-expectation.ts';
export { DateTimeTrigger, TimeDeltaTrigger, FileExistsTrigger, HttpPollTrigger, HttpPollError, ExternalEventTrigger } from '../../triggers/index.ts';
export {
  TriggerDagRunOperator,
  TRIGGER_RUN_ID_KEY,
  TRIGGER_LOGICAL_DATE_KEY,
  type TriggerDagRunOperatorOptions,
} from './operators/trigger-dagrun.ts';
export { ExternalTaskSensor, type ExternalTaskSensorOptions } from './sensors/external-task-sensor.ts';
export type { DagRunAccess, DagRunStateName, ExternalRunState, ExternalStateQuery, TaskStateName, TriggerDagRunRequest, TriggeredDagRun } from './cross-dag.ts';
export { DagStateTrigger, WorkflowTrigger } from '../../triggers/index.ts';
export { HITLOperator, ApprovalOperator, APPROVE, REJECT, type HITLOperatorOptions, type ApprovalOperatorOptions } from './operators/hitl.ts';
export { HitlTimeoutError, InvalidHitlAnswerError, type HitlAnswer, type HitlRequest, type HitlAccess } from './hitl.ts';
export { HITLTrigger } from '../../triggers/index.ts';
