/**
 * Counters, gauges and summaries rendered in the Prometheus text format. One registry per daemon
 * object (no global registry), so two triggerers in one test process keep separate figures.
 */
export class Metrics {
  readonly #metrics = new Map<string, Metric>();

  counter(name: string, help: string): Counter {
    return this.#add(name, new Counter(name, help));
  }

  /** A gauge; with `collect`, its value is read at scrape time. */
  gauge(name: string, help: string, collect?: () => number): Gauge {
    return this.#add(name, new Gauge(name, help, collect));
  }

  summary(name: string, help: string, window = 10_000): Summary {
    return this.#add(name, new Summary(name, help, window));
  }

  render(): string {
    return [...this.#metrics.values()].map((m) => m.render()).join('');
  }

  #add<M extends Metric>(name: string, metric: M): M {
    if (this.#metrics.has(name)) throw new Error(`metric ${name} is registered twice`);
    this.#metrics.set(name, metric);
    return metric;
  }
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  #value = 0;
  readonly #name: string;
  readonly #help: string;
  constructor(name: string, help: string) {
    this.#name = name;
    this.#help = help;
  }
  inc(by = 1): void {
    this.#value += by;
  }
  get value(): number {
    return this.#value;
  }
  render(): string {
    return `# HELP ${this.#name} ${this.#help}\n# TYPE ${this.#name} counter\n${this.#name} ${this.#value}\n`;
  }
}

export class Gauge implements Metric {
  #value = 0;
  readonly #name: string;
  readonly #help: string;
  readonly #collect: (() => number) | undefined;
  constructor(name: string, help: string, collect?: () => number) {
    this.#name = name;
    this.#help = help;
    this.#collect = collect;
  }
  set(value: number): void {
    this.#value = value;
  }
  get value(): number {
    return this.#collect ? this.#collect() : this.#value;
  }
  render(): string {
    return `# HELP ${this.#name} ${this.#help}\n# TYPE ${this.#name} gauge\n${this.#name} ${this.value}\n`;
  }
}

/** Count, sum, and the 0.5 / 0.9 / 0.99 quantiles of the most recent `window` observations. */
export class Summary implements Metric {
  #count = 0;
  #sum = 0;
  readonly #ring: Float64Array;
  #next = 0;
  readonly #name: string;
  readonly #help: string;
  constructor(name: string, help: string, window: number) {
    this.#name = name;
    this.#help = help;
    this.#ring = new Float64Array(window);
  }
  observe(value: number): void {
    this.#count++;
    this.#sum += value;
    this.#ring[this.#next % this.#ring.length] = value;
    this.#next++;
  }
  get count(): number {
    return this.#count;
  }
  quantile(q: number): number {
    const n = Math.min(this.#next, this.#ring.length);
    if (n === 0) return Number.NaN;
    const sorted = this.#ring.slice(0, n).sort();
    return sorted[Math.min(n - 1, Math.floor(q * n))] as number;
  }
  render(): string {
    const lines = [`# HELP ${this.#name} ${this.#help}`, `# TYPE ${this.#name} summary`];
    for (const q of [0.5, 0.9, 0.99]) lines.push(`${this.#name}{quantile="${q}"} ${this.quantile(q)}`);
    lines.push(`${this.#name}_sum ${this.#sum}`, `${this.#name}_count ${this.#count}`);
    return `${lines.join('\n')}\n`;
  }
}
