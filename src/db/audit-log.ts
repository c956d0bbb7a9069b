import type { JsonObject } from '../sdk/json.ts';
import type { Db } from './database.ts';

/* The audit log: each state change made through the API, who made it and when. Details never hold secrets. */

export interface AuditEntry {
  username: string | null;
  action: string;
  target: string | null;
  details: JsonObject;
}

export interface AuditRecord extends AuditEntry {
  id: number;
  at: Date;
}

export async function writeAudit(db: Db, entry: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({ username: entry.username, action: entry.action, target: entry.target, details: JSON.stringify(entry.details) })
    .execute();
}

export interface AuditQuery {
  limit: number;
  offset: number;
  username?: string | undefined;
  action?: string | undefined;
}

/** Newest first. */
export async function listAudit(db: Db, query: AuditQuery): Promise<{ entries: AuditRecord[]; total: number }> {
  const base = db
    .selectFrom('audit_log')
    .$if(query.username !== undefined, (q) => q.where('username', '=', query.username as string))
    .$if(query.action !== undefined, (q) => q.where('action', '=', query.action as string));
  const [rows, count] = await Promise.all([
    base.selectAll().orderBy('at', 'desc').orderBy('id', 'desc').limit(query.limit).offset(query.offset).execute(),
    base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { entries: rows.map((r) => ({ id: r.id, at: r.at, username: r.username, action: r.action, target: r.target, details: r.details })), total: Number(count.n) };
}
