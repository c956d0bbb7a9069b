/**
 * Resolves on the first SIGTERM or SIGINT, so a daemon can drain gracefully. A second signal, or the
 * drain running past `forceAfterMs`, exits at once with a non-zero code. Only the CLI handles
 * signals; library classes never call `process.on`.
 */
export function shutdownSignal(options: { forceAfterMs: number; onForce?: (why: string) => void }): {
  received: Promise<NodeJS.Signals>;
  dispose: () => void;
} {
  let forceTimer: NodeJS.Timeout | undefined;
  let first: NodeJS.Signals | undefined;
  let resolveReceived: (signal: NodeJS.Signals) => void = () => undefined;
  const received = new Promise<NodeJS.Signals>((resolve) => (resolveReceived = resolve));
  const force = (why: string, code: number): void => {
    options.onForce?.(why);
    process.exit(code);
  };
  const handler = (signal: NodeJS.Signals): void => {
    if (first) return force(`second ${signal}: exiting now`, signal === 'SIGINT' ? 130 : 143);
    first = signal;
    forceTimer = setTimeout(() => force(`shutdown took longer than ${options.forceAfterMs} ms: exiting now`, 1), options.forceAfterMs);
    forceTimer.unref();
    resolveReceived(signal);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return {
    received,
    dispose: () => {
      clearTimeout(forceTimer);
      process.off('SIGTERM', handler);
      process.off('SIGINT', handler);
    },
  };
}
