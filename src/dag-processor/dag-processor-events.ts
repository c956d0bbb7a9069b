export interface DagProcessorEvents {
  started: { jobId: number };
  /** One file's result was written. */
  'file:recorded': { file: string; dagIds: string[]; error: string | undefined };
  /** A pass parsed `files` changed files (0 when nothing changed) and wrote their results. */
  pass: { files: number; dags: number; errors: number; durationMs: number; deactivated: string[] };
  stopped: Record<string, never>;
}
