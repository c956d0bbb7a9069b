import { spawn } from 'node:child_process';
import path from 'node:path';
import { findBinaries, reachableBinaries, resolveRunAs, type RunAs } from '../../src/db/embedded/postgres-binaries.ts';

/**
 * Stops and starts the test run's embedded PostgreSQL on its port, as an operator's restart would.
 * Undefined when the tests run against TSFLOW_TEST_DATABASE_URL: a shared server is not ours to stop.
 */
export interface TestServerControl {
  /** `pg_ctl stop -m fast`: every connection is terminated, and new ones are refused until `start`. */
  stop(): Promise<void>;
  /** Starts it again on the same port, and resolves when it accepts connections. */
  start(): Promise<void>;
}

export function testServerControl(): TestServerControl | undefined {
  const dataDir = process.env['TSFLOW_TEST_DATA_DIR'];
  const adminUrl = process.env['TSFLOW_TEST_ADMIN_URL'];
  if (!dataDir || !adminUrl || process.env['TSFLOW_TEST_DATABASE_URL']) return undefined;
  const port = new URL(adminUrl).port;
  const pgCtl = async (args: string[]): Promise<void> => {
    const runAs = resolveRunAs();
    const binaries = await reachableBinaries(await findBinaries(), runAs);
    await run(binaries.pgCtl, args, runAs);
  };
  return {
    stop: () => pgCtl(['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60', '-s']),
    start: () => pgCtl(['start', '-D', dataDir, '-w', '-t', '60', '-s', '-l', path.join(dataDir, 'server.log'), '-o', `-p ${port}`]),
  };
}

function run(command: string, args: string[], runAs: RunAs): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { uid: runAs.uid, gid: runAs.gid, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl ${args[0]} exited with ${code}: ${output.trim()}`))));
  });
}
