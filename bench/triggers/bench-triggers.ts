import { BaseTrigger, TriggerEvent, type JsonObject } from 'tsflow';

/** Fires `afterMs` after it starts running, with the moment it started: what the pickup benchmark reads. */
export class StampTrigger extends BaseTrigger<JsonObject> {
  static override readonly classpath = 'bench.StampTrigger';

  override async run(signal: AbortSignal): Promise<TriggerEvent | undefined> {
    const startedAt = Date.now();
    const afterMs = Number(this.kwargs['afterMs'] ?? 0);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, afterMs);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    return signal.aborted ? undefined : new TriggerEvent({ startedAt });
  }
}
