// Runs the tsflow command again on the Node.js that `npm install` brought (the `node` package, a
// dependency of tsflow), when the `node` that started it is older than tsflow needs. Plain
// JavaScript that any Node.js since 14 can load: it runs before the version check lets anything else.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The `node` package's binary, wherever npm installed it (this repository, or a project using tsflow); undefined if absent. */
export function bundledNode(fromUrl) {
  try {
    const manifest = createRequire(fromUrl).resolve('node/package.json');
    const binary = path.join(path.dirname(manifest), 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
    return existsSync(binary) ? binary : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `script` with `args` on `binary` with the same stdio, and ends this process as the child
 * ends (same exit code, or the same signal). SIGTERM and SIGHUP sent to this process are passed
 * on; SIGINT is not, because a Ctrl-C in a terminal reaches the child directly (same process
 * group), and a second SIGINT would make a daemon exit without draining.
 */
export function runOn(binary, script, args) {
  const child = spawn(binary, [script, ...args], { stdio: 'inherit' });
  const forward = (signal) => child.kill(signal);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  process.on('SIGINT', () => undefined);
  child.on('error', (error) => {
    console.error(`tsflow: error: cannot start ${binary}: ${error.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code ?? 1);
    }
  });
}
