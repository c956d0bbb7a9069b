import type { TaskInstanceKey } from '../db/schema.ts';
import type { WriteResult } from './outcome-writer.ts';

export interface TriggerInfo {
  triggerId: number;
  task: TaskInstanceKey | undefined;
}

export interface TriggererEvents {
  started: { jobId: number };
  claimed: { triggerIds: number[] };
  /** One look at the database finished (`sync`: it also checked what it still owns). */
  pass: { sync: boolean; claimed: number };
  'trigger:started': TriggerInfo;
  'trigger:fired': TriggerInfo & { latenessMs: number | undefined; result: WriteResult };
  'trigger:failed': TriggerInfo & { error: string; result: WriteResult };
  'trigger:cancelled': TriggerInfo & { reason: string };
  /** The run watcher read the watched runs of other DAGs (`watches`: how many waits it covered). */
  'watch:checked': { watches: number };
  'loop:blocked': { blockedMs: number; triggerIds: number[] };
  stopped: { released: number };
}
