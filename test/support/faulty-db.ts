import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import type { Db } from '../../src/db/database.ts';
import type { Schema } from '../../src/db/schema.ts';

/**
 * When a statement meets its fault: `before` it reaches the server (the connection was already gone),
 * or `after` it ran and committed (the connection died before the reply came back: an ambiguous commit).
 */
export type FaultTiming = 'before' | 'after';

/** Decides, for each statement's SQL text, whether it fails; called once per statement. */
export type FaultRule = (sql: string) => FaultTiming | undefined;

/** What pg reports when the server ends a connection under a running query. */
export function connectionLost(): Error {
  return new Error('Connection terminated unexpectedly');
}

/**
 * A Db on a real pool whose statements fail as `rule` says, with the error a dropped connection gives —
 * the statement either never ran or really ran. Every other statement goes through untouched.
 * `before` runs ahead of each statement, on the connection it is about to use: to break that
 * connection for real (pg_terminate_backend) rather than stage the failure.
 */
export function faultyDb(pool: pg.Pool, rule: FaultRule, before?: (sql: string) => Promise<void>): Db {
  const wrapped: PostgresPool = {
    options: {},
    connect: async () => {
      const client = await pool.connect();
      const faulty = {
        // Kysely reads the backend pid from here rather than asking the server.
        get processID() {
          return (client as unknown as { processID?: number }).processID;
        },
        query: async (text: string, parameters: readonly unknown[]) => {
          await before?.(text);
          const timing = rule(text);
          if (timing === 'before') throw connectionLost();
          const result = await client.query(text, [...parameters]);
          if (timing === 'after') throw connectionLost();
          return result;
        },
        release: (destroy?: boolean) => client.release(destroy),
      };
      return faulty as unknown as PostgresPoolClient;
    },
    // The pool belongs to the test database, which closes it.
    end: async () => undefined,
  };
  return new Kysely<Schema>({ dialect: new PostgresDialect({ pool: wrapped }) });
}
