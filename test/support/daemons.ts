/*
 * Root hooks: every daemon a test starts is tracked, and the test that leaves one running fails
 * (after the daemon is stopped, so one leak does not cascade).
 */
interface Stoppable {
  readonly state: string;
  stop(): Promise<void>;
}

const tracked = new Set<{ name: string; daemon: Stoppable }>();

export function track<T extends Stoppable>(daemon: T, name = daemon.constructor.name): T {
  tracked.add({ name, daemon });
  return daemon;
}

/** Stops every tracked daemon, newest first (a suite's afterEach calls it). */
export async function stopAll(): Promise<void> {
  for (const { daemon } of [...tracked].reverse()) {
    if (daemon.state !== 'stopped' && daemon.state !== 'created') await daemon.stop();
  }
}

export const mochaHooks = {
  async afterEach(): Promise<void> {
    const leaked = [...tracked].filter(({ daemon }) => daemon.state !== 'stopped' && daemon.state !== 'created');
    tracked.clear();
    for (const { daemon } of leaked) await daemon.stop().catch(() => undefined);
    if (leaked.length > 0) {
      throw new Error(`the test left ${leaked.map((l) => l.name).join(', ')} running: stop every daemon it starts`);
    }
  },
};
