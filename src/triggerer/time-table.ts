import type { TriggerRuntime } from '../sdk/trigger.ts';

/** Waits released per turn of the event loop; between turns, I/O (event writes) gets its share. */
const CHUNK = 1000;
/** Even with nothing due sooner, look at the clock this often, so a wall clock set forward is noticed. */
const MAX_SLEEP_MS = 60_000;

/** One pending wait. Resolving it touches no EventTarget: abort reaches it through its signal's `SignalWaits`. */
class Wait {
  readonly at: number;
  readonly seq: number;
  readonly #resolve: () => void;
  readonly #owner: SignalWaits;
  done = false;

  constructor(at: number, seq: number, resolve: () => void, owner: SignalWaits) {
    this.at = at;
    this.seq = seq;
    this.#resolve = resolve;
    this.#owner = owner;
  }

  /** Due: resolve. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.#owner.remove(this);
    this.#resolve();
  }

  /** Aborted: resolve now; the entry leaves the heap lazily. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.#resolve();
  }
}

/**
 * The waits of one abort signal, and its single abort listener (`handleEvent`). A trigger that
 * sleeps again and again on the same signal adds one listener in all, not one per sleep, and a
 * released wait never has to remove one (EventTarget removal costs more than the wait itself).
 */
class SignalWaits {
  readonly #table: TimeTable;
  #one: Wait | undefined;
  #more: Set<Wait> | undefined;

  constructor(table: TimeTable) {
    this.#table = table;
  }

  add(wait: Wait): void {
    if (this.#one === undefined && this.#more === undefined) this.#one = wait;
    else (this.#more ??= new Set()).add(wait);
  }

  remove(wait: Wait): void {
    if (this.#one === wait) this.#one = undefined;
    else this.#more?.delete(wait);
  }

  handleEvent(): void {
    const waits = [...(this.#one ? [this.#one] : []), ...(this.#more ?? [])];
    this.#one = undefined;
    this.#more = undefined;
    for (const wait of waits) {
      wait.abort();
      this.#table.abandoned();
    }
  }
}

/**
 * The triggerer's clock for time triggers: one Node timer for the earliest deadline over a binary
 * heap of waits, instead of a timer per trigger. When many waits fall due together (100,000 at one
 * instant), they are released a chunk per event-loop turn, so event writes start and complete while
 * the rest are still being released — with a timer each, Node would fire them all in one timers
 * phase and hold every I/O callback until the last. The wall clock is read on each wake, so a clock
 * set back re-arms and one set forward is noticed within a minute.
 */
export class TimeTable implements TriggerRuntime {
  readonly #heap: Wait[] = [];
  readonly #bySignal = new WeakMap<AbortSignal, SignalWaits>();
  #seq = 0;
  #abandoned = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #draining = false;

  get size(): number {
    return this.#heap.length - this.#abandoned;
  }

  sleepUntil(epochMs: number, signal: AbortSignal): Promise<void> {
    // Already due (deferred after its moment): resolve now. Through the heap it would wait for a
    // timer, and Node makes a 0 ms timer at least 1 ms.
    if (signal.aborted || epochMs <= Date.now()) return Promise.resolve();
    let owner = this.#bySignal.get(signal);
    if (!owner) {
      owner = new SignalWaits(this);
      this.#bySignal.set(signal, owner);
      signal.addEventListener('abort', owner, { once: true });
    }
    const waits = owner;
    return new Promise((resolve) => {
      const wait = new Wait(epochMs, this.#seq++, resolve, waits);
      waits.add(wait);
      this.#push(wait);
      if (!this.#draining && epochMs < this.#timerAt) this.#arm();
    });
  }

  /** Drops every wait (their triggers were cancelled) and stops the timer: the triggerer is stopping. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#heap.length = 0;
    this.#abandoned = 0;
  }

  /** @internal an aborted wait still sits in the heap; compact when they pile up. */
  abandoned(): void {
    this.#abandoned++;
    if (this.#abandoned > 1000 && this.#abandoned * 2 > this.#heap.length) this.#compact();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const next = this.#heap[0];
    if (!next) {
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    const delay = Math.min(Math.max(0, next.at - Date.now()), MAX_SLEEP_MS);
    this.#timerAt = next.at;
    this.#timer = setTimeout(TimeTable.#wake, delay, this);
  }

  static #wake(table: TimeTable): void {
    table.#timer = undefined;
    table.#timerAt = Number.POSITIVE_INFINITY;
    table.#drain();
  }

  #drain(): void {
    this.#draining = false;
    const now = Date.now();
    let released = 0;
    while (released < CHUNK) {
      const head = this.#heap[0];
      if (!head || head.at > now) break;
      this.#pop();
      if (head.done) {
        this.#abandoned--;
        continue;
      }
      head.release();
      released++;
    }
    const head = this.#heap[0];
    if (head && head.at <= Date.now()) {
      this.#draining = true;
      setImmediate(() => this.#drain()); // more are due: let I/O run first
    } else {
      this.#arm();
    }
  }

  #compact(): void {
    const live = this.#heap.filter((w) => !w.done);
    this.#heap.length = 0;
    this.#abandoned = 0;
    for (const wait of live) this.#push(wait);
    if (!this.#draining) this.#arm();
  }

  #push(wait: Wait): void {
    const heap = this.#heap;
    heap.push(wait);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(wait, heap[parent] as Wait)) break;
      heap[i] = heap[parent] as Wait;
      i = parent;
    }
    heap[i] = wait;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop() as Wait;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right] as Wait, heap[left] as Wait) ? right : left;
      if (!before(heap[child] as Wait, last)) break;
      heap[i] = heap[child] as Wait;
      i = child;
    }
    heap[i] = last;
  }
}

function before(a: Wait, b: Wait): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
