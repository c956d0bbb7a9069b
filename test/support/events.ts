import type { TypedEmitter } from '../../src/common/typed-emitter.ts';

/**
 * Resolves with the first `event` whose payload satisfies `predicate`, or rejects after `timeoutMs`
 * with a message naming what was awaited. Tests await events, never sleeps.
 */
type EventsOf<T> = T extends { readonly '~events'?: infer E } ? NonNullable<E> : never;

export function waitForEvent<T extends TypedEmitter<EventsOf<T>>, K extends keyof EventsOf<T> & string>(
  emitter: T,
  event: K,
  predicate: (payload: EventsOf<T>[K]) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<EventsOf<T>[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    const off = emitter.on(event, (payload) => {
      if (!predicate(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
