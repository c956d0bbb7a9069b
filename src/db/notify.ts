import { sql } from 'kysely';
import type { Db } from './database.ts';

/** The channels tsflow uses. A notification means "look now"; the payload is only a hint. */
export const Channels = {
  /** Trigger rows inserted, released or to be cancelled: wakes triggerers (and timeout sweepers). */
  trigger: 'tsflow_trigger',
  /** Task instances the scheduler should look at (became scheduled, finished): wakes schedulers. */
  ti: 'tsflow_ti',
} as const;

export type Channel = (typeof Channels)[keyof typeof Channels];

/** Queues a NOTIFY in the current transaction; Postgres delivers it at commit, never on rollback. */
export async function notify(db: Db, channel: Channel, hint = ''): Promise<void> {
  await sql`SELECT pg_notify(${channel}, ${hint})`.execute(db);
}
