import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';

/**
 * Calls `onChange` once a burst of changes under `folder` has settled for `debounceMs`. Watches are
 * a hint, never the truth: they miss changes (network filesystems, a folder replaced), so the DAG
 * processor also scans on a timer. A watch that fails is logged and closed; the scan carries on.
 */
export class FolderWatch {
  readonly #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(folder: string, debounceMs: number, log: Logger, onChange: () => void) {
    const fire = (): void => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(onChange, debounceMs);
    };
    try {
      this.#watcher = watch(folder, { recursive: true, persistent: false }, fire);
      this.#watcher.on('error', (error) => {
        log.warn({ err: error, folder }, 'the DAG folder watch failed; changes are seen at the next scan');
        this.close();
      });
    } catch (error) {
      log.warn({ err: error, folder }, 'cannot watch the DAG folder; changes are seen at the next scan');
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
  }
}
