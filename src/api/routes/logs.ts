import type { ServerResponse } from 'node:http';
import { Type } from 'typebox';
import { sleep } from '../../common/sleep.ts';
import { getTaskInstance } from '../../db/task-instances.ts';
import type { TaskInstanceKey, TaskInstanceRow } from '../../db/schema.ts';
import { taskLogPath } from '../../runner/task-log.ts';
import { readLogFrom } from '../log-reader.ts';
import { notFound } from '../problem.ts';
import { JsonObjectSchema, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const LogLineSchema = Type.Object({ text: Type.String({ description: 'the line as tsflow tasks logs prints it' }), record: JsonObjectSchema });

/** A try is not over while its task instance is on it and in one of these states (a deferred try resumes and logs more). */
const TRY_GOING_ON = new Set(['queued', 'running', 'deferred', 'up_for_reschedule', 'scheduled']);

function tryGoingOn(ti: TaskInstanceRow | undefined, tryNumber: number): boolean {
  return ti !== undefined && ti.try_number === tryNumber && ti.state !== null && TRY_GOING_ON.has(ti.state);
}

/**
 * A try's log: `GET …/logs/{try_number}` returns its lines from `offset` (bytes) and the offset to
 * read on from. With `follow=true` (or `Accept: application/x-ndjson`) the response is a stream of
 * NDJSON lines that grows while the try goes on, and ends once it is over (or the server stops).
 * Reads $TSFLOW_LOGS_FOLDER: tries run by a `tsflow worker` on another machine log there.
 */
export function registerLogRoutes(app: ApiApp, { database, logsFolder, options }: RouteContext): void {
  const { db } = database;
  const following = new Set<ServerResponse>();
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
    for (const response of following) response.end();
    following.clear();
  });

  app.get(
    '/dags/:dag_id/dagRuns/:dag_run_id/taskInstances/:task_id/logs/:try_number',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['task instances'],
        summary: "a try's log; follow=true streams new lines (NDJSON) while the try runs",
        params: Type.Object({ dag_id: Type.String(), dag_run_id: Type.String(), task_id: Type.String(), try_number: Type.Integer({ minimum: 1 }) }),
        querystring: Type.Object({
          offset: Type.Integer({ minimum: 0, default: 0, description: 'byte offset to read from (next_offset of the previous read)' }),
          follow: Type.Boolean({ default: false, description: 'stream lines as NDJSON until the try is over' }),
          map_index: Type.Integer({ minimum: -1, default: -1, description: 'the map index of a mapped task instance; -1: unmapped' }),
        }),
        response: responses({
          200: Type.Object({
            try_number: Type.Integer(),
            content: Type.Array(LogLineSchema),
            next_offset: Type.Integer(),
            running: Type.Boolean({ description: 'the try is not over: read again from next_offset for more' }),
          }),
        }),
      },
    },
    async (request, reply) => {
      const { dag_id: dagId, dag_run_id: runId, task_id: taskId, try_number: tryNumber } = request.params;
      const key: TaskInstanceKey = { dagId, runId, taskId, mapIndex: request.query.map_index };
      const ti = await getTaskInstance(db, key);
      if (!ti) throw notFound(`no task instance ${dagId}.${taskId} in run '${runId}'`);
      if (tryNumber > Math.max(ti.try_number, 1)) throw notFound(`${dagId}.${taskId} in run '${runId}' has had ${ti.try_number} tr${ti.try_number === 1 ? 'y' : 'ies'}, so no try ${tryNumber}`);
      const file = taskLogPath(logsFolder, key, tryNumber);
      const follow = request.query.follow || (request.headers.accept ?? '').includes('application/x-ndjson');
      if (!follow) {
        const { lines, nextOffset } = await readLogFrom(file, request.query.offset);
        return { try_number: tryNumber, content: lines, next_offset: nextOffset, running: tryGoingOn(ti, tryNumber) };
      }

      reply.hijack();
      const response = reply.raw;
      response.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
      following.add(response);
      let gone = false;
      request.raw.on('close', () => (gone = true));
      response.on('close', () => (gone = true));
      let offset = request.query.offset;
      try {
        for (;;) {
          // Whether the try goes on is read before the file, so the last lines are read after it ended.
          const going = tryGoingOn(await getTaskInstance(db, key), tryNumber);
          const { lines, nextOffset } = await readLogFrom(file, offset);
          offset = nextOffset;
          if (lines.length > 0) response.write(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
          if (!going || gone || closing) break;
          await sleep(options.logPollMs);
        }
      } catch (error) {
        request.log.warn({ err: error, dagId, runId, taskId, tryNumber }, 'following a task log failed');
      } finally {
        following.delete(response);
        response.end();
      }
    },
  );
}
