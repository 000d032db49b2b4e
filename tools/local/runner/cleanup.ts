/** What a run undoes at its end, or on an interruption: a stack of steps, run last first, once. */
export class CleanupStack {
  private readonly steps: Array<{ what: string; step: () => Promise<unknown>; onError?: (error: unknown) => void }> =
    [];
  private running: Promise<void> | undefined;

  constructor(private readonly log: (message: string) => void) {}

  /** Adds a step, to run before every step added earlier. `onError` says more than the logged failure. */
  push(what: string, step: () => Promise<unknown>, onError?: (error: unknown) => void): void {
    this.steps.push({ what, step, ...(onError ? { onError } : {}) });
  }

  /**
   * Runs every step, last added first; a failed step is logged and the others still run. Once: a second call (a
   * signal during the cleanup) returns the same promise.
   */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (let next = this.steps.pop(); next; next = this.steps.pop()) {
        try {
          await next.step();
        } catch (error) {
          this.log(`cleanup of ${next.what} failed: ${String(error)}`);
          next.onError?.(error);
        }
      }
    })();
    return this.running;
  }
}
