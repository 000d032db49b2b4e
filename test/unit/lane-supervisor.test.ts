import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { LaneHost } from '../../tools/local/runner/lane-host';
import { InvocationTimeoutError, superviseLane } from '../../tools/local/runner/lane-supervisor';

/** A runtime whose invocations answer with its name, or hang when told to; it records being killed. */
function runtime(name: string, hang = false) {
  const state = { killed: false };
  const host: LaneHost = {
    invoke: () => (hang ? new Promise(() => undefined) : Promise.resolve(name)),
    environments: () => 1,
    utilization: () => ({ idle: 0, active: 0, utilization: 0 }),
    close: async () => undefined,
    kill: async () => {
      state.killed = true;
    },
  };
  return { host, state };
}

const context = {} as Context;

describe('a lane runtime under supervision (Lambda timeouts and crashes)', () => {
  it('fails an invocation past the timeout, kills its runtime and starts another for the next invocation', async () => {
    // Arrange
    const first = runtime('first', true);
    const second = runtime('second');
    const kills: string[] = [];
    const lane = superviseLane(first.host, async () => second.host, { timeoutMs: 50, onKill: (r) => kills.push(r) });

    // Act
    const timedOut = lane.invoke({}, context).catch((e: unknown) => e);
    const error = await timedOut;
    const next = await lane.invoke({}, context);

    // Assert
    expect(error).toBeInstanceOf(InvocationTimeoutError);
    expect(String((error as Error).message)).toMatch(/Task timed out after 0\.05 seconds/);
    expect(first.state.killed).toBe(true);
    expect(kills).toEqual(['timeout']);
    expect(next).toBe('second');
    expect(lane.kills()).toBe(1);
    expect(lane.environments()).toBe(2);
  });

  it('crash() kills the live runtime once, and the next invocation runs on a new one', async () => {
    // Arrange
    const first = runtime('first');
    let started = 0;
    const lane = superviseLane(first.host, async () => {
      started++;
      return runtime(`runtime ${started + 1}`).host;
    });

    // Act
    lane.crash();
    lane.crash(); // the replacement is not up yet: one kill, one new runtime
    const answer = await lane.invoke({}, context);

    // Assert
    expect(first.state.killed).toBe(true);
    expect(started).toBe(1);
    expect(answer).toBe('runtime 2');
  });
});
