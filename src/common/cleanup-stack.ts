/**
 * Releasers for what a command or daemon set up, run in reverse order. Every step runs even when an
 * earlier one fails; all failures are reported together.
 */
export class CleanupStack {
  readonly #steps: { name: string; run: () => unknown }[] = [];

  push(name: string, run: () => unknown): void {
    this.#steps.push({ name, run });
  }

  async runAll(): Promise<void> {
    const errors: Error[] = [];
    while (this.#steps.length > 0) {
      const step = this.#steps.pop() as { name: string; run: () => unknown };
      try {
        await step.run();
      } catch (error) {
        errors.push(new Error(`${step.name}: ${(error as Error).message}`, { cause: error }));
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, errors.map((e) => e.message).join('; '));
  }
}
