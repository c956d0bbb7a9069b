import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BIN } from './support/cli.ts';
import { freePort } from './support/cli-process.ts';

/**
 * An older `node` on the machine (these ship Node 20), or undefined: the first `node` on PATH other
 * than the one running the tests, outside node_modules (where npm put the Node it brought).
 */
function olderNode(): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'node');
    if (dir.includes('node_modules') || !existsSync(candidate)) continue;
    try {
      const version = execFileSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
      if (Number(version.split('.')[0]) < 22) return candidate;
    } catch {
      // not runnable: look further
    }
  }
  return undefined;
}

describe('tsflow started by a Node.js older than 22', () => {
  const old = olderNode();

  before(function () {
    if (!old) this.skip(); // this machine has no older node to start it with
  });

  it('runs itself on the Node.js that npm installed', () => {
    const out = execFileSync(old as string, [BIN, 'version'], { encoding: 'utf8', env: { ...process.env, TSFLOW_LOG_LEVEL: 'warn' } });
    const [, major] = /\(node v(\d+)\./.exec(out) ?? [];
    expect(Number(major), out).to.be.at.least(22);
  });

  it('passes SIGTERM on to the daemon and exits with its code', async function () {
    this.timeout(30_000);
    const port = await freePort();
    const child = spawn(old as string, [BIN, 'triggerer'], {
      env: { ...process.env, TSFLOW_LOG_LEVEL: 'warn', TSFLOW_DATABASE_URL: `postgres://tsflow:pw@127.0.0.1:${port}/tsflow` },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`no 'waiting for the database' line within 20 s: ${stderr}`)), 20_000);
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('waiting for the database')) {
          clearTimeout(deadline);
          resolve();
        }
      });
      void exited.then(() => {
        clearTimeout(deadline);
        reject(new Error(`exited before waiting for the database: ${stderr}`));
      });
    }).catch(async (error: unknown) => {
      child.kill('SIGTERM');
      await exited;
      throw error;
    });
    child.kill('SIGTERM');
    expect(await exited).to.deep.equal({ code: 0, signal: null });
  });
});
