import type { Logger } from 'pino';
import { DagSpec } from '../dag-bag/serialized-dag.ts';
import type { Db } from '../db/database.ts';
import { loadSerializedDags, serializedDagHashes } from '../db/serialized-dags.ts';

/**
 * The serialized DAGs a scheduler works from, read from the database (never from DAG files): a
 * refresh compares each DAG's hash and reloads only the changed ones, so a DAG processor's new
 * version takes effect on the next pass. Refreshed when `tsflow_dag` announces a change, when a run
 * names a DAG not loaded yet, and at least every `maxAgeMs` (the safety net behind NOTIFY).
 */
export class DagCache {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #maxAgeMs: number;
  readonly #specs = new Map<string, { hash: string; spec: DagSpec }>();
  /** DAGs whose serialized form cannot be used (a newer format, a custom timetable), by hash: logged once. */
  readonly #unusable = new Map<string, string>();
  #stale = true;
  #refreshedAt = 0;

  constructor(db: Db, logger: Logger, maxAgeMs = 5000) {
    this.#db = db;
    this.#log = logger;
    this.#maxAgeMs = maxAgeMs;
  }

  /** Marks the cache stale: the next `refreshIfNeeded` reads the hashes again. */
  invalidate(): void {
    this.#stale = true;
  }

  get(dagId: string): DagSpec | undefined {
    const entry = this.#specs.get(dagId);
    if (!entry) this.#stale = true; // a run of a DAG parsed after the last refresh: look next pass
    return entry?.spec;
  }

  *values(): IterableIterator<DagSpec> {
    for (const { spec } of this.#specs.values()) yield spec;
  }

  /** True when some DAG has a `dagrunTimeout`: only then does the scheduler look for runs past theirs. */
  get anyRunTimeout(): boolean {
    for (const { spec } of this.#specs.values()) if (spec.data.dagrunTimeoutSeconds !== null) return true;
    return false;
  }

  get size(): number {
    return this.#specs.size;
  }

  async refreshIfNeeded(): Promise<void> {
    if (!this.#stale && Date.now() - this.#refreshedAt < this.#maxAgeMs) return;
    this.#stale = false;
    this.#refreshedAt = Date.now();
    const hashes = await serializedDagHashes(this.#db);
    for (const dagId of [...this.#specs.keys()]) if (!hashes.has(dagId)) this.#specs.delete(dagId);
    const changed = [...hashes].filter(([dagId, hash]) => this.#specs.get(dagId)?.hash !== hash && this.#unusable.get(dagId) !== hash).map(([id]) => id);
    for (const { dagId, hash, data } of await loadSerializedDags(this.#db, changed)) {
      try {
        this.#specs.set(dagId, { hash, spec: new DagSpec(data) });
        this.#unusable.delete(dagId);
      } catch (error) {
        this.#unusable.set(dagId, hash);
        this.#specs.delete(dagId);
        this.#log.error({ dagId, err: error }, 'cannot schedule this DAG from its serialized form');
      }
    }
  }
}
