import { spawn } from 'node:child_process';
import path from 'node:path';
import { findBinaries, reachableBinaries, resolveRunAs } from '../../src/db/embedded/postgres-binaries.ts';

/**
 * `pg_ctl restart -m fast` of an embedded server's data folder: every connection is terminated, and
 * the server comes back on the same port (pg_ctl reuses the options it was started with).
 */
export async function restartServer(dataDir: string): Promise<void> {
  const runAs = resolveRunAs();
  const binaries = await reachableBinaries(await findBinaries(), runAs);
  await new Promise<void>((resolve, reject) => {
    // The new postmaster logs to a file: given our pipes, it would hold them open for its whole life.
    const child = spawn(binaries.pgCtl, ['restart', '-D', dataDir, '-m', 'fast', '-w', '-t', '60', '-s', '-l', path.join(dataDir, 'restart.log')], {
      uid: runAs.uid,
      gid: runAs.gid,
      stdio: 'ignore',
      env: { ...process.env, LC_ALL: 'C' },
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl restart exited with ${code}; see ${path.join(dataDir, 'restart.log')}`))));
  });
}
