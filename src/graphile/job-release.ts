/*
 * graphile-worker (0.18, unbatched mode) marks a finished job done — or failed — in a promise it
 * never awaits (`completeJob(job)` / `failJob(...)` in its worker loop). When that one statement
 * fails, as it does when the server restarts at that moment (the connection is terminated, 57P01, or
 * refused), the rejection is unhandled and Node ends the whole `tsflow worker` process. The worker
 * command catches exactly that rejection (told apart by the graphile-worker function on its stack)
 * and the worker deletes the job left locked behind it (see deleteLeftoverJobs).
 */

/** graphile-worker's functions that mark a job done or failed. */
const RELEASE_FRAME = /\bat (?:async )?batch(?:Complete|Fail)Jobs\b/;

/** The rejection is graphile-worker failing to mark a finished job done or failed. */
export function isJobReleaseFailure(error: unknown): boolean {
  return error instanceof Error && typeof error.stack === 'string' && RELEASE_FRAME.test(error.stack);
}
