/**
 * The faults of one `npm run chaos` run, drawn from its seed: what each lane's requests meet at the fault proxies
 * (http-proxy.ts, redis-proxy.ts), what its runtimes and event source mappings do, and what the capture's producer
 * does. Decisions come from seeded streams of their own per lane and request class, so the same seed makes the same
 * decision for the n-th request of a kind, whatever else the run does.
 *
 * Two sorts of fault:
 * - background faults, with a probability per request or invocation (a failed sink write, a throttled or conflicting
 *   checkpoint write, a reset Redis connection, a lost commit, a moved partition): many per run;
 * - one-shot faults the run arms at drawn times (chaos/run.ts): the next checkpoint commit of a lane crashes its
 *   runtime (after its sink write, before the commit), the next sink write of a lane hangs past the function timeout,
 *   the next dead-letter send fails.
 * Nothing is injected until {@link FaultInjector.start}: the initial snapshot is loaded without faults.
 */
import type { Lane } from '../../../functions/core/types';
import { Prng } from '../../lib/prng';
import type { PipelineFaults } from '../runner/system';
import { type FaultProxy, type HttpFault, type ProxiedRequest, startFaultProxy } from './http-proxy';
import { type RedisFault, type RedisFaultProxy, startRedisFaultProxy } from './redis-proxy';

/** Every fault `npm run chaos` injects, as its JSON reports them. */
export const FAULT_KINDS = [
  'sinkWriteFailedAfterEffect',
  'sinkWriteFailedBeforeEffect',
  'redisResetAfterScript',
  'redisResetBeforeScript',
  'dynamoThrottled',
  'checkpointConflict',
  'transactionCancelled',
  'laneCrashBeforeCheckpoint',
  'invocationTimeout',
  'batchRedelivered',
  'batchBisected',
  'partitionMoved',
  'captureCrash',
  'brokerRestart',
  'deadLetterSendFailed',
  'cacheFlushed',
  'warehouseDeleted',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export function noFaults(): Record<FaultKind, number> {
  return Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
}

/** Probabilities of the background faults. */
export interface FaultRates {
  /** Per sink object write (warehouse, audit): failed before or after it took effect. */
  sinkWrite: number;
  /** Per checkpoint read: throttled. */
  checkpointRead: number;
  /** Per checkpoint commit: throttled, refused by its condition, or its transaction cancelled. */
  checkpointCommit: number;
  /** Per Redis script call of the cache lane: connection reset before or after it ran. */
  redisScript: number;
  /** Per dead-letter send (SQS message or its S3 payload). */
  deadLetterSend: number;
  /** Per successful invocation: its commit lost, the batch delivered again. */
  redelivery: number;
  /** Per invocation: run in a new execution environment. */
  partitionMove: number;
}

export const DEFAULT_RATES: FaultRates = {
  sinkWrite: 0.05,
  checkpointRead: 0.03,
  checkpointCommit: 0.05,
  redisScript: 0.03,
  deadLetterSend: 0.3,
  redelivery: 0.05,
  partitionMove: 0.05,
};

/** One-shot faults the run arms for a lane. */
export type Shot = 'crash' | 'timeout' | 'deadLetterSend';

/** A burst of one fault over consecutive requests: the SDK retries a 500 or a throttle three times on its own. */
interface Burst {
  fault: HttpFault;
  left: number;
}

/** A stable 32-bit hash of a stream's name, mixed into the run's seed. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class FaultInjector {
  readonly counts = noFaults();
  private enabled = false;
  private readonly streams = new Map<string, Prng>();
  private readonly bursts = new Map<string, Burst>();
  private readonly shots = new Map<string, number>();
  private readonly proxies: Array<FaultProxy | RedisFaultProxy> = [];
  private producerRetries = 0;
  /** Kills a lane's runtime (the pipeline's crashLane), once the pipeline is there. */
  crashLane: ((lane: Lane) => void) | undefined;

  constructor(
    private readonly seed: number,
    private readonly options: { deadLetterBucket: string; invocationTimeoutMs: number; rates?: FaultRates },
  ) {}

  private get rates(): FaultRates {
    return this.options.rates ?? DEFAULT_RATES;
  }

  private stream(name: string): Prng {
    let prng = this.streams.get(name);
    if (!prng) {
      prng = new Prng(streamSeed(this.seed, name));
      this.streams.set(name, prng);
    }
    return prng;
  }

  /** Faults from now on. */
  start(): void {
    this.enabled = true;
  }

  /** No more faults (the drain and the verification run without them). */
  stop(): void {
    this.enabled = false;
    this.bursts.clear();
  }

  /** Arms a one-shot fault for the lane's next matching request. */
  arm(shot: Shot, lane: Lane): void {
    const key = `${lane}:${shot}`;
    this.shots.set(key, (this.shots.get(key) ?? 0) + 1);
  }

  /** One-shot faults armed and not fired yet. */
  pendingShots(): number {
    let pending = 0;
    for (const n of this.shots.values()) pending += n;
    return pending;
  }

  /** The next hand-over of the capture is produced twice (a producer retry after the broker lost its ack). */
  duplicateNextProduce(): void {
    this.producerRetries++;
  }

  private fire(lane: Lane, shot: Shot): boolean {
    const key = `${lane}:${shot}`;
    const armed = this.shots.get(key) ?? 0;
    if (armed === 0) return false;
    this.shots.set(key, armed - 1);
    return true;
  }

  private burst(key: string, fault: HttpFault, prng: Prng): HttpFault {
    const length = prng.int(1, 4);
    if (length > 1) this.bursts.set(key, { fault, left: length - 1 });
    return fault;
  }

  /** What a lane's request to a service meets. */
  decideHttp(lane: Lane, request: ProxiedRequest): HttpFault | undefined {
    if (!this.enabled) return undefined;
    const key = `${lane}:${request.class}`;
    const ongoing = this.bursts.get(key);
    if (ongoing) {
      if (--ongoing.left === 0) this.bursts.delete(key);
      return ongoing.fault;
    }
    const prng = this.stream(key);
    const rates = this.rates;
    switch (request.class) {
      case 'sinkWrite': {
        if (this.fire(lane, 'timeout')) {
          this.counts.invocationTimeout++;
          return 'hold';
        }
        if (!prng.chance(rates.sinkWrite)) return undefined;
        const after = prng.chance(0.5);
        this.counts[after ? 'sinkWriteFailedAfterEffect' : 'sinkWriteFailedBeforeEffect']++;
        return this.burst(key, after ? 'failAfter' : 'failBefore', prng);
      }
      case 'checkpointRead': {
        // The cache lane writes no objects: its timeout hangs the checkpoint read at the start of an invocation.
        if (lane === 'cache' && this.fire(lane, 'timeout')) {
          this.counts.invocationTimeout++;
          return 'hold';
        }
        if (!prng.chance(rates.checkpointRead)) return undefined;
        this.counts.dynamoThrottled++;
        return this.burst(key, 'throttle', prng);
      }
      case 'checkpointCommit': {
        if (this.fire(lane, 'crash')) {
          // The sink write is done, the checkpoint not: the runtime dies with the commit on the wire.
          this.counts.laneCrashBeforeCheckpoint++;
          setImmediate(() => this.crashLane?.(lane));
          return 'hold';
        }
        if (!prng.chance(rates.checkpointCommit)) return undefined;
        const fault = prng.pick(['throttle', 'conditionFailed', 'transactionConflict'] as const);
        if (fault === 'throttle') {
          this.counts.dynamoThrottled++;
          return this.burst(key, fault, prng);
        }
        this.counts[fault === 'conditionFailed' ? 'checkpointConflict' : 'transactionCancelled']++;
        return fault;
      }
      case 'deadLetterSend': {
        if (!this.fire(lane, 'deadLetterSend') && !prng.chance(rates.deadLetterSend)) return undefined;
        this.counts.deadLetterSendFailed++;
        return this.burst(key, prng.chance(0.5) ? 'failAfter' : 'failBefore', prng);
      }
      default:
        return undefined;
    }
  }

  /** What a script call of the cache lane meets. */
  decideRedis(): RedisFault | undefined {
    if (!this.enabled) return undefined;
    const prng = this.stream('cache:redis');
    if (!prng.chance(this.rates.redisScript)) return undefined;
    const after = prng.chance(0.5);
    this.counts[after ? 'redisResetAfterScript' : 'redisResetBeforeScript']++;
    return after ? 'resetAfter' : 'resetBefore';
  }

  /** The pipeline's fault points (system.ts). */
  pipelineFaults(): PipelineFaults {
    return {
      invocationTimeoutMs: this.options.invocationTimeoutMs,
      laneEnv: (lane, env) => this.laneEnv(lane, env),
      freshEnvironment: (lane) => {
        if (!this.enabled || !this.stream(`${lane}:move`).chance(this.rates.partitionMove)) return false;
        this.counts.partitionMoved++;
        return true;
      },
      loseCommit: (lane) => {
        if (!this.enabled || !this.stream(`${lane}:redeliver`).chance(this.rates.redelivery)) return false;
        this.counts.batchRedelivered++;
        return true;
      },
      duplicateProduce: () => {
        if (this.producerRetries === 0) return false;
        this.producerRetries--;
        return true;
      },
    };
  }

  /** The lane's environment with every service endpoint behind a fault proxy of its own. */
  private async laneEnv(lane: Lane, env: Record<string, string>): Promise<Record<string, string>> {
    const out = { ...env };
    const services = [
      ['AWS_ENDPOINT_URL_DYNAMODB', 'dynamodb'],
      ['AWS_ENDPOINT_URL_S3', 's3'],
      ['AWS_ENDPOINT_URL_SQS', 'sqs'],
    ] as const;
    for (const [variable, service] of services) {
      const upstream = env[variable];
      if (upstream === undefined) continue;
      const proxy = await startFaultProxy({
        upstream,
        service,
        deadLetterBucket: this.options.deadLetterBucket,
        decide: (request) => this.decideHttp(lane, request),
      });
      this.proxies.push(proxy);
      out[variable] = proxy.url;
    }
    if (env.REDIS_URL !== undefined) {
      const proxy = await startRedisFaultProxy({ upstream: env.REDIS_URL, decide: () => this.decideRedis() });
      this.proxies.push(proxy);
      out.REDIS_URL = proxy.url;
    }
    return out;
  }

  async close(): Promise<void> {
    this.stop();
    await Promise.all(this.proxies.map((p) => p.close()));
  }
}
