import { Type } from 'typebox';
import { listImportErrors } from '../../db/serialized-dags.ts';
import { DateTimeString, iso, PageQuery, responses } from '../schemas.ts';
import type { ApiApp, RouteContext } from '../server.ts';

const ImportError = Type.Object({ filename: Type.String(), stack_trace: Type.String(), timestamp: DateTimeString });

/** The DAG files the DAG processor could not import, by file name. */
export function registerImportErrorRoutes(app: ApiApp, { database }: RouteContext): void {
  app.get(
    '/importErrors',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['import errors'],
        summary: 'DAG files that failed to import, with their errors',
        querystring: Type.Object(PageQuery),
        response: responses({ 200: Type.Object({ import_errors: Type.Array(ImportError), total_entries: Type.Integer() }) }),
      },
    },
    async (request) => {
      // One row per broken file in the DAG folder: small, and paged here.
      const errors = await listImportErrors(database.db);
      const page = errors.slice(request.query.offset, request.query.offset + request.query.limit);
      return { import_errors: page.map((e) => ({ filename: e.filename, stack_trace: e.stacktrace, timestamp: iso(e.timestamp) })), total_entries: errors.length };
    },
  );
}
