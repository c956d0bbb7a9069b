import { maskText } from '../secrets/masker.ts';

const INSTALLED = Symbol.for('tsflow.outputMasking');

/**
 * Masks registered secrets (src/secrets/masker.ts) in everything this CLI process writes to stdout
 * and stderr: command output, notices, errors. The CLI owns its process's streams (STYLE: signals
 * and process wiring belong to the CLI), so it may wrap them; daemons' log lines are masked by their
 * logger already. Idempotent.
 */
export function installOutputMasking(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const marked = stream as unknown as Record<symbol, unknown>;
    if (marked[INSTALLED]) continue;
    marked[INSTALLED] = true;
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) =>
      write(typeof chunk === 'string' ? maskText(chunk) : chunk instanceof Uint8Array ? maskBytes(chunk) : chunk, ...rest)) as typeof stream.write;
  }
}

function maskBytes(chunk: Uint8Array): Uint8Array {
  const text = Buffer.from(chunk).toString('utf8');
  const masked = maskText(text);
  return masked === text ? chunk : Buffer.from(masked);
}
