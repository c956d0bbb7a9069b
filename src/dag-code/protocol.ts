import type { BuiltStartDeferral, NextRunRequest, PlannedRun, StartTriggerRequest } from '../scheduler/start-from-trigger.ts';

/** Scheduler → DAG code host. */
export type ToDagCode =
  | { type: 'start-deferral'; id: number; request: StartTriggerRequest }
  | { type: 'next-run'; id: number; request: NextRunRequest };

/** DAG code host → scheduler: the answer to request `id`. */
export type FromDagCode =
  | { id: number; ok: true; result: BuiltStartDeferral | PlannedRun | null }
  | { id: number; ok: false; error: string }
  /** The file changed since this process imported it: modules cannot be unloaded, so start a new host. */
  | { id: number; ok: false; stale: true };

export function isToDagCode(value: unknown): value is ToDagCode {
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  return type === 'start-deferral' || type === 'next-run';
}

export function isFromDagCode(value: unknown): value is FromDagCode {
  return typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'number' && 'ok' in value;
}
