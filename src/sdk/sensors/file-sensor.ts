import { FileExistsTrigger, type FileExistsTriggerKwargs } from '../../../triggers/file-exists-trigger.ts';
import type { TaskContext } from '../context.ts';
import { BaseSensorOperator, checkTriggerOptions, type BaseSensorOptions, type PokeResult } from './base-sensor.ts';

export interface FileSensorOptions extends BaseSensorOptions, Omit<FileExistsTriggerKwargs, 'pollInterval'> {}

/**
 * Waits for files (Airflow's `FileSensor`): an absolute path to a file or a directory (which counts
 * once it holds a file), or a glob. With `minSize` / `stableFor`, a file still being written does not
 * count. Its result (and XCom) is `{ paths, truncated }`. Deferred, it hands the wait to a
 * `FileExistsTrigger` that looks every `pokeInterval` and also wakes on filesystem events.
 */
export class FileSensor extends BaseSensorOperator {
  readonly #kwargs: FileExistsTriggerKwargs;

  constructor(options: FileSensorOptions) {
    super(options);
    this.#kwargs = {
      path: options.path,
      recursive: options.recursive,
      minSize: options.minSize,
      stableFor: options.stableFor,
      pollInterval: this.pokeInterval.toMillis() > 0 ? this.pokeInterval : 5,
    };
    checkTriggerOptions(options.taskId, () => this.trigger());
  }

  override async poke(context: TaskContext): Promise<PokeResult> {
    const found = await this.trigger().useLogger(context.log).scan();
    if (found.paths.length === 0) return false;
    context.log.info({ matches: found.paths.length, first: found.paths[0] }, 'files found');
    return { done: true, value: { paths: found.paths, truncated: found.truncated } };
  }

  override trigger(): FileExistsTrigger {
    return new FileExistsTrigger(this.#kwargs);
  }
}
