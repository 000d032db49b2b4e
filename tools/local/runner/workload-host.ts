/**
 * The workload (workload.ts) in a child process of its own, so that it can actually produce its rate: in the
 * runner's process its database round trips would wait behind the lanes' work on the same event loop, and the
 * workload would measure the pipeline's load rather than drive it.
 */
import { fileURLToPath } from 'node:url';
import { firstMessage, spawnHelper, stopHelper, toParent } from './child';
import { startWorkload, type Workload, type WorkloadOptions, type WorkloadResult } from './workload';

const CHILD_FLAG = '--cdc-sync-workload-host';
type ChildMessage =
  | { type: 'changes'; changes: number }
  | { type: 'done'; result: WorkloadResult }
  | { type: 'error'; message: string };

/** Starts the workload in a child process. Same contract as {@link startWorkload}. */
export function startWorkloadProcess(options: Omit<WorkloadOptions, 'onChanges'>): Workload {
  const child = spawnHelper(fileURLToPath(import.meta.url), [CHILD_FLAG, JSON.stringify(options)]);
  let changes = 0;
  child.on('message', (message: ChildMessage) => {
    if (message.type === 'changes') changes = message.changes;
  });
  const done = firstMessage(child, (message) => {
    const m = message as ChildMessage;
    if (m.type === 'error') throw new Error(`workload failed: ${m.message}`);
    return m.type === 'done' ? m.result : undefined;
  }).finally(() => stopHelper(child));
  return {
    done,
    stop: () => {
      if (child.connected) child.send({ type: 'stop' });
    },
    changes: () => changes,
  };
}

async function serve(options: WorkloadOptions): Promise<void> {
  const send = (message: ChildMessage) => toParent(message);
  let last = -1;
  const workload = startWorkload(options);
  const report = setInterval(() => {
    const now = workload.changes();
    if (now !== last) send({ type: 'changes', changes: now });
    last = now;
  }, 100);
  process.on('message', (message: { type?: string }) => {
    // 'stop' ends the workload early; after 'done' the parent's stop just ends this process.
    if (message.type === 'stop') workload.stop();
  });
  // Ctrl-C reaches the whole process group: leave it to the parent, whose exit disconnects us (then we clean up).
  process.on('SIGINT', () => undefined);
  const parentGone = () => {
    workload.stop();
    process.exit(0);
  };
  process.on('disconnect', parentGone);
  // The parent went away while this process started (its run failed or was interrupted): nobody wants the changes,
  // and a 'disconnect' that came before the listener above will not come again.
  if (!process.connected) parentGone();
  try {
    const result = await workload.done;
    send({ type: 'done', result });
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  } finally {
    clearInterval(report);
  }
  // Wait for the parent's stop (or disconnect) so the last message is delivered before exiting.
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'stop') process.exit(0);
  });
}

const flag = process.argv.indexOf(CHILD_FLAG);
if (flag >= 0 && process.send) await serve(JSON.parse(process.argv[flag + 1] ?? '{}') as WorkloadOptions);
