import type { ServerResponse } from 'node:http';
import { Type } from 'typebox';
import { Channels } from '../../db/protocol.ts';
import type { LiveEvent } from '../live-events.ts';
import type { ApiApp, RouteContext } from '../server.ts';

/** SSE event names by channel. */
const EVENT_NAMES = { [Channels.ti]: 'ti', [Channels.trigger]: 'trigger', [Channels.dag]: 'dag', [Channels.event]: 'event' } as const;
const KEEP_ALIVE_MS = 15_000;

/**
 * `GET /api/v1/stream`: server-sent events relaying the daemons' NOTIFYs — `ti` (task instances or
 * runs changed), `trigger` (waits created, fired, cancelled), `dag` (DAGs parsed, paused, import
 * errors), each with `{channel, payload}`; and `reconnected` when some may have been missed. A page
 * reloads what it shows on an event; nothing polls. Streams end when the server stops.
 */
export function registerStreamRoutes(app: ApiApp, { live }: RouteContext): void {
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const response of open) response.end();
    open.clear();
  });

  app.get(
    '/stream',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['live'],
        summary: 'server-sent events: ti, trigger, dag, event, reconnected (data: {channel, payload})',
        produces: ['text/event-stream'],
        response: { 200: Type.String({ description: 'an event stream (text/event-stream)' }) },
      },
    },
    async (request, reply) => {
      reply.hijack();
      const response = reply.raw;
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      response.write('retry: 3000\n: connected\n\n');
      open.add(response);
      const send = (event: LiveEvent): void => {
        if (event.kind === 'reconnected') {
          response.write('event: reconnected\ndata: {}\n\n');
          return;
        }
        const { channel, payload } = event.notification;
        response.write(`event: ${EVENT_NAMES[channel]}\ndata: ${JSON.stringify({ channel, payload })}\n\n`);
      };
      const unsubscribe = live?.subscribe(send);
      const keepAlive = setInterval(() => response.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
      const end = (): void => {
        clearInterval(keepAlive);
        unsubscribe?.();
        open.delete(response);
      };
      request.raw.on('close', end);
      response.on('close', end);
    },
  );
}
