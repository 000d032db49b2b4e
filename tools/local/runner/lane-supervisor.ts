/**
 * A lane's runtime as Lambda manages it when things go wrong: an invocation that outlives the function's timeout
 * fails with "Task timed out" and its runtime is killed mid-flight, as is a runtime that crashes; the next invocation
 * gets a new runtime (a cold start). What the killed invocation had done stays done (a sink write that landed), what
 * it had not is redelivered by the event source mapping: exactly the state the lanes' checkpoints must recover from.
 *
 * `npm run chaos` runs its lanes under this; the default run keeps one runtime per lane for the whole run.
 */
import type { Context } from 'aws-lambda';
import type { LaneHost } from './lane-host';

export interface SupervisedLane extends LaneHost {
  /** Kills the runtime now (invocations in flight fail) and starts another for the next invocation. */
  crash(): void;
  /** Runtimes killed so far (crashes and timeouts). */
  kills(): number;
}

export class InvocationTimeoutError extends Error {
  override readonly name = 'Sandbox.Timedout';
}

export function superviseLane(
  first: LaneHost,
  start: () => Promise<LaneHost>,
  options: { timeoutMs?: number; onKill?: (reason: string) => void } = {},
): SupervisedLane {
  let current: Promise<LaneHost> = Promise.resolve(first);
  let live: LaneHost | undefined = first;
  let killed = 0;
  /** Environments of the runtimes that were killed (the live one reports its own). */
  let before = 0;

  const kill = (host: LaneHost, reason: string) => {
    if (live !== host) return; // already replaced
    live = undefined;
    killed++;
    before += host.environments();
    options.onKill?.(reason);
    current = (async () => {
      await host.kill();
      const next = await start();
      live = next;
      return next;
    })();
    current.catch(() => undefined);
  };

  return {
    async invoke(event: unknown, context: Context, invokeOptions?: { fresh?: boolean }) {
      const host = await current;
      const running = host.invoke(event, context, invokeOptions);
      const timeoutMs = options.timeoutMs;
      if (timeoutMs === undefined) return running;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          kill(host, 'timeout');
          reject(new InvocationTimeoutError(`Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`));
        }, timeoutMs);
      });
      running.catch(() => undefined); // a killed runtime's invocation rejects after the timeout already did
      try {
        return await Promise.race([running, timedOut]);
      } finally {
        clearTimeout(timer);
      }
    },
    crash() {
      if (live) kill(live, 'crash');
    },
    kills: () => killed,
    environments: () => before + (live?.environments() ?? 0),
    utilization: () => (live ?? first).utilization(),
    async close() {
      const host = await current.catch(() => undefined);
      await host?.close();
    },
    async kill() {
      const host = await current.catch(() => undefined);
      await host?.kill();
    },
  };
}
