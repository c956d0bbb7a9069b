import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isRetryableError } from '../db/retry.ts';

/** An error a route throws on purpose: its status and a message that says what to do. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly title: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, title: string, detail: string, headers: Record<string, string> = {}) {
    super(detail);
    this.status = status;
    this.title = title;
    this.headers = headers;
  }
}

export const notFound = (detail: string): ApiError => new ApiError(404, 'Not Found', detail);
export const badRequest = (detail: string): ApiError => new ApiError(400, 'Bad Request', detail);
export const conflict = (detail: string): ApiError => new ApiError(409, 'Conflict', detail);

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
}

export function sendProblem(reply: FastifyReply, status: number, title: string, detail: string): FastifyReply {
  const body: ProblemBody = { type: 'about:blank', title, status, detail };
  return reply.code(status).type('application/problem+json').send(body);
}

/**
 * Every error becomes problem details, never a stack trace: schema violations 400 (the message names
 * the field), ApiErrors their own status, a database that is down or restarting 503 with
 * Retry-After, anything else 500 (logged, with the route but never the query string or body).
 */
export function errorHandler(logger: Logger) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (error instanceof ApiError) {
      reply.headers(error.headers);
      return sendProblem(reply, error.status, error.title, error.message);
    }
    if (error.validation) return sendProblem(reply, 400, 'Bad Request', error.message);
    if (isRetryableError(error)) {
      reply.header('retry-after', '5');
      return sendProblem(reply, 503, 'Service Unavailable', 'the database is unreachable or restarting: try again in a few seconds');
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      return sendProblem(reply, error.statusCode, STATUS_CODES[error.statusCode] ?? 'Bad Request', error.message);
    }
    logger.error({ err: error, method: request.method, route: request.routeOptions.url }, 'request failed');
    return sendProblem(reply, 500, 'Internal Server Error', 'the server failed to handle the request; its log says why');
  };
}
