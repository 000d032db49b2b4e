/**
 * Helper processes of the runner (the AWS emulators, the workload): a TypeScript file of this folder run with tsx
 * and an IPC channel. Each helper exits when its parent goes away (IPC disconnect), so an interrupted run leaves
 * nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** Starts `file` (an absolute path) with tsx; its stdout goes to our stderr so `--json` keeps stdout clean. */
export function spawnHelper(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  nodeOptions: string[] = [],
): ChildProcess {
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return spawn(process.execPath, [...nodeOptions, '--import', tsx, file, ...args], {
    stdio: ['ignore', 2, 2, 'ipc'],
    env,
  });
}

/** Resolves with the first message `accept` returns a value for; rejects if the child exits or errs first. */
export function firstMessage<T>(child: ChildProcess, accept: (message: unknown) => T | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (message: unknown) => {
      let value: T | undefined;
      try {
        value = accept(message);
      } catch (error) {
        cleanup();
        reject(error);
        return;
      }
      if (value === undefined) return;
      cleanup();
      resolve(value);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`helper process exited (code ${code}) unexpectedly`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', reject);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.once('error', reject);
  });
}

/**
 * In a helper: sends `message` to the parent, if it is still there. The parent may have gone while the helper was
 * starting (its run failed or was interrupted): a message nobody can receive is dropped (false), rather than becoming
 * an 'error' event that kills the helper with ERR_IPC_CHANNEL_CLOSED and a stack trace.
 */
export function toParent(message: unknown): boolean {
  if (!process.send || !process.connected) return false;
  // With a callback, a channel that closes during the send reports to it instead of emitting 'error'.
  process.send(message, undefined, undefined, () => undefined);
  return true;
}

/** Asks a helper to stop and waits for it to exit (killing it after `timeoutMs`). */
export async function stopHelper(child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (child.connected) child.send({ type: 'stop' });
    else child.kill('SIGTERM');
  });
}
