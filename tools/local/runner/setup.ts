/**
 * What a run has before it starts anything: its names (cache prefix, slot), a state directory, and the stack that
 * undoes everything it starts afterwards, at its end or when a signal or a crash interrupts it.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CleanupStack } from './cleanup';
import type { RunHooks } from './context';
import { onInterrupt } from './interrupts';
import type { RunOptions } from './options';
import { RUN_SLOT_PREFIX } from './source-checks';

/** One run: what every phase reads, and where each reports. */
export interface Run {
  readonly options: RunOptions;
  readonly hooks: RunHooks;
  readonly log: (message: string) => void;
  /** What went wrong without stopping the run, in order; the result lists them. */
  readonly problems: string[];
  /** Everything the run starts or creates is undone, last first: at the end of the run, or on a signal (once). */
  readonly cleanup: CleanupStack;
  /** Where throw-away state goes (see {@link scratchDir}). */
  readonly scratch: string;
  /** The run's own files: the change log read back for verification; with `--keep`, what the run leaves to explore. */
  readonly stateDir: string;
  /** The prefix of the run's keys in the shared Redis. */
  readonly cachePrefix: string;
  /** The capture's slot, and its publication's name too; names starting with it are the run's. */
  readonly slotName: string;
  /** `--source`: the database is someone else's. */
  readonly external: boolean;
}

/**
 * Where throw-away state goes: RAM (/dev/shm) when it is there with room to spare, else the temp dir. PostgreSQL
 * writes its WAL there; on a virtual disk that alone can cost more than the whole pipeline.
 */
async function scratchDir(): Promise<string> {
  try {
    const fs = await statfs('/dev/shm');
    if (fs.bavail * fs.bsize >= 2 * 1024 ** 3) {
      const probe = await mkdtemp('/dev/shm/cdc-sync-probe-');
      await rm(probe, { recursive: true, force: true });
      return '/dev/shm';
    }
  } catch {
    // no /dev/shm (macOS, Windows) or not writable
  }
  return tmpdir();
}

/** Names the run and makes its state directory, removed at the end unless `--keep`. */
export async function setUpRun(options: RunOptions, hooks: RunHooks): Promise<Run> {
  const log = hooks.log ?? (() => undefined);
  const scratch = await scratchDir();
  const stateDir = options.keep ? resolve(options.stateDir) : await mkdtemp(join(scratch, 'cdc-sync-start-'));
  if (options.keep) {
    // A kept state is for exploring one run: start it afresh so runs never mix.
    await rm(stateDir, { recursive: true, force: true });
    await mkdir(stateDir, { recursive: true });
  }
  const id = randomBytes(4).toString('hex');
  const external = options.source !== undefined;
  const cleanup = new CleanupStack(log);
  if (!options.keep) {
    // Interrupted, the throw-away state still goes: it may be in RAM (/dev/shm).
    const removeState = () => rmSync(stateDir, { recursive: true, force: true });
    process.once('exit', removeState);
    cleanup.push('state', async () => {
      process.off('exit', removeState);
      await rm(stateDir, { recursive: true, force: true });
    });
  }
  return {
    options,
    hooks,
    log,
    problems: [],
    cleanup,
    scratch,
    stateDir,
    cachePrefix: `cdc-start-${id}`,
    // An external database is someone else's: our slot and publication get unique names and are dropped at the end.
    slotName: external ? `${RUN_SLOT_PREFIX}${id}` : 'cdc_sync',
    external,
  };
}

/**
 * Makes a signal or a crash (interrupts.ts) stop the run and undo it: `stop` first (the progress line), then the
 * cleanup. Returns the function that ends this once the run is over.
 */
export function undoOnInterrupt(run: Run, stop: () => void): () => void {
  const { cleanup, log } = run;
  return onInterrupt((why) => {
    stop();
    log(`\n${why}: stopping the pipeline and cleaning up…`);
    // An impatient second Ctrl-C must not cut the cleanup short (async-exit-hook ignores it): say what is going on.
    const patience = () =>
      log(
        run.external
          ? 'still cleaning up, at most 10 s: stopping now would leave the run’s slot in the source, keeping its WAL'
          : 'still cleaning up, at most 10 s',
      );
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, patience);
    return cleanup.run().finally(() => {
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, patience);
    });
  });
}
