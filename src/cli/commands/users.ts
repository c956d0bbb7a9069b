import { hashPassword, newSecret, sha256 } from '../../api/credentials.ts';
import { addToken, API_ROLES, createUser, deleteUser, listUsers } from '../../db/api-users.ts';
import { writeAudit } from '../../db/audit-log.ts';
import type { ApiRole } from '../../db/schema.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { readPassword } from '../read-password.ts';
import { withRuntime } from '../runtime.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/* The API server's users: `tsflow users create|list|delete|token`. Changes are written to the audit log as made by `cli`. */

const CLI_ACTOR = 'cli';

function parseRole(value: string | undefined): ApiRole {
  if (value === undefined) throw new UsageError(`tsflow users create needs --role, one of ${API_ROLES.join(', ')}`);
  const role = API_ROLES.find((r) => r === value);
  if (!role) throw new UsageError(`unknown role '${value}': choose one of ${API_ROLES.join(', ')} (viewer reads; operator also triggers, clears, marks and operates waits; admin also manages users and pools)`);
  return role;
}

function checkUsername(value: string): string {
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(value)) {
    throw new UsageError(`username '${value.slice(0, 70)}' is not allowed: use 1-64 letters, digits, '_', '.', '@' or '-'`);
  }
  return value;
}

/** `tsflow users create --username U --role R`. */
export const usersCreate = defineCommand(
  {
    name: 'users create',
    summary: 'create an API user with a role; the password is prompted (or read from stdin when piped)',
    options: {
      username: { type: 'string', value: 'U', description: 'the login name' },
      role: { type: 'string', value: 'R', description: `one of ${API_ROLES.join(', ')}` },
    },
    details: [
      'viewer: read everything; operator: also trigger runs, clear and mark task instances, pause DAGs, operate waits;',
      'admin: also users, pools and the audit log. The password is stored as an scrypt hash.',
    ],
  },
  async ({ values }, settings) => {
    if (values.username === undefined) throw new UsageError('tsflow users create needs --username U');
    const username = checkUsername(values.username);
    const role = parseRole(values.role);
    const password = await readPassword();
    const hash = await hashPassword(password);
    return withRuntime(settings, {}, async (runtime) => {
      const db = runtime.database.db;
      await createUser(db, username, role, hash);
      await writeAudit(db, { username: CLI_ACTOR, action: 'user.create', target: `username=${username}`, details: { role } });
      console.log(`created user '${username}' with role ${role}`);
      return 0;
    });
  },
);

/** `tsflow users list [--json]`. */
export const usersList = defineCommand(
  { name: 'users list', summary: 'the API users and their roles', options: { json: JSON_OUTPUT } },
  async ({ values }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const users = await listUsers(runtime.database.db);
      if (values.json) console.log(JSON.stringify(users.map((u) => ({ username: u.username, role: u.role, createdAt: u.createdAt.toISOString() }))));
      else if (users.length === 0) console.log('no users (tsflow users create --username U --role admin makes one)');
      else for (const u of users) console.log(`${u.username.padEnd(24)} ${u.role.padEnd(9)} created ${u.createdAt.toISOString()}`);
      return 0;
    }),
);

/** `tsflow users delete USERNAME`. */
export const usersDelete = defineCommand(
  { name: 'users delete', summary: 'delete an API user with its sessions and tokens', positionals: ['USERNAME'], options: {} },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const username = positionals[0] as string;
      const db = runtime.database.db;
      await deleteUser(db, username);
      await writeAudit(db, { username: CLI_ACTOR, action: 'user.delete', target: `username=${username}`, details: {} });
      console.log(`deleted user '${username}'`);
      return 0;
    }),
);

/** `tsflow users token USERNAME`: prints a new API token once. */
export const usersToken = defineCommand(
  {
    name: 'users token',
    summary: "make an API token for a user (printed once; send it as Authorization: Bearer TOKEN)",
    positionals: ['USERNAME'],
    options: {},
    details: ['The token has the user\'s role and lasts until the user is deleted; only its SHA-256 hash is stored.'],
  },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const username = positionals[0] as string;
      const db = runtime.database.db;
      const token = newSecret('tsf_');
      await addToken(db, username, sha256(token));
      await writeAudit(db, { username: CLI_ACTOR, action: 'user.token', target: `username=${username}`, details: {} });
      console.log(token);
      return 0;
    }),
);
