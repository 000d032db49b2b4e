/**
 * `npm start`'s live status page: the run's {@link RunStatus} served by tools/status/server.ts on 127.0.0.1, its
 * address printed at the start and announced in `.local/status.json` (for `npm run status` without `--env`), and with
 * `--keep` left serving after the run until Ctrl-C.
 */
import { rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type StatusServer, startStatusServer } from '../../status/server';
import { onInterrupt } from './interrupts';
import type { RunOptions } from './options';
import { RunStatus } from './status';

/** Where a running (or kept) `npm start` announces its status page. */
export const STATUS_FILE = '.local/status.json';

/** `.local/status.json`. */
export interface StatusFile {
  pid: number;
  /** `http://127.0.0.1:<port>/`; the report is at `<url>api/status`. */
  url: string;
  startedAt: string;
}

export interface StatusPage {
  status: RunStatus;
  /** Null with `--no-status`. */
  url: string | null;
  /** With `--keep`: serves on after the run until Ctrl-C (or SIGTERM), then closes. */
  linger(log: (message: string) => void): Promise<void>;
  close(): Promise<void>;
}

/** Starts the page (unless `--no-status`) before anything else of the run, so its address comes first. */
export async function openStatusPage(
  options: Pick<RunOptions, 'statusPort' | 'topicPrefix'>,
  log: (message: string) => void,
  file: string = STATUS_FILE,
): Promise<StatusPage> {
  const status = new RunStatus(options.topicPrefix);
  let server: StatusServer | undefined;
  if (options.statusPort !== null) {
    server = await startStatusServer({ port: options.statusPort, read: () => status.report() });
    const content: StatusFile = { pid: process.pid, url: server.url, startedAt: new Date().toISOString() };
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(content, null, 2)}\n`);
    // A crash or a signal ends the process without the close below: the announcement must not outlive it.
    process.once('exit', () => rmSync(file, { force: true }));
    log(`status page: ${server.url}`);
  }
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      status.stop();
      if (!server) return;
      await rm(file, { force: true });
      await server.close();
    })();
    return closed;
  };
  return {
    status,
    url: server?.url ?? null,
    close,
    async linger(say) {
      if (!server) return;
      say(`the status page stays at ${server.url} until Ctrl-C`);
      // The signal's exit hook (interrupts.ts) waits for this close, then exits 128 + the signal.
      await new Promise<void>(() => {
        onInterrupt(() => close());
      });
    },
  };
}
