/**
 * `npm run smoke`'s logic: a canary row through every sink and back out. It writes the row into the source's
 * heartbeat table, waits until each sink's probe sees it (latency: commit acknowledged → seen), deletes it and waits
 * until each sink shows the delete. The waiting works over {@link SinkProbe}s only; {@link runSmoke} builds them for
 * a local run from its {@link RunCoordinates}, aws.ts for a deployed environment.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { createRedis, type RedisLike } from '../../functions/adapters/redis-cache-sink';
import type { RunCoordinates } from '../local/runner/control';
import { type CanaryWriter, openCanaryWriter, SmokeSetupError } from './canary';
import {
  auditProbe,
  type Canary,
  cacheProbe,
  SINK_NAMES,
  type SinkName,
  type SinkProbe,
  warehouseProbe,
} from './probes';

export interface SmokeOptions {
  /** How long each sink may take to show the insert, and then the delete (ms from the commit). */
  timeoutMs: number;
  /** Pause between two looks of a probe. @default 100 */
  pollMs?: number;
  /** Told what the smoke test is doing (the command prints it on stderr). */
  log?: (message: string) => void;
  /** Stops the waiting (Ctrl-C); the canary row is deleted all the same. */
  signal?: AbortSignal;
}

/** What one sink showed: whether, and how long after the commit (ms, as seen by polling). */
export interface SinkOutcome {
  seen: boolean;
  latencyMs: number | null;
  /** The probe's last failure, when it never saw the change (a missing permission, an unreachable endpoint). */
  lastError?: string;
}

export interface SmokeResult {
  /** Every sink showed the canary and then its delete in time. */
  ok: boolean;
  canaryId: number;
  /** Per sink that takes the source's changes (a local run without Redis has no cache lane). */
  sinks: Partial<Record<SinkName, SinkOutcome>>;
  /** The same for the delete; null when it was not waited for (a sink never showed the insert). */
  deleted: Partial<Record<SinkName, SinkOutcome>> | null;
}

/** Where the smoke test writes and looks: the clients and places of one local run or deployed environment. */
export interface SmokeTarget {
  source: { connection: string | pg.ClientConfig; heartbeatTable: string; topicPrefix: string };
  /** Each null when no lane of that sink takes this source's changes (a local run without Redis has no cache). */
  cache: { redis: () => RedisLike; prefix: string } | null;
  s3: S3Client;
  warehouse: { bucket: string; prefix: string } | null;
  audit: { bucket: string; prefix: string } | null;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((done) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      done();
    });
  });

/** Polls one probe until it sees the canary or the deadline passes; a failing look is retried, its error kept. */
async function watch(probe: SinkProbe, canary: Canary, options: SmokeOptions): Promise<SinkOutcome> {
  const deadline = canary.committedAt + options.timeoutMs;
  let lastError: string | undefined;
  for (;;) {
    try {
      if (await probe.seen(canary)) return { seen: true, latencyMs: Math.max(0, Date.now() - canary.committedAt) };
      lastError = undefined;
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (Date.now() >= deadline || options.signal?.aborted) {
      return { seen: false, latencyMs: null, ...(lastError ? { lastError } : {}) };
    }
    await sleep(Math.min(options.pollMs ?? 100, Math.max(0, deadline - Date.now())), options.signal);
  }
}

async function watchAll(probes: SinkProbe[], canary: Canary, options: SmokeOptions) {
  const outcomes = await Promise.all(probes.map((p) => watch(p, canary, options)));
  return Object.fromEntries(probes.map((p, i) => [p.sink, outcomes[i]])) as Partial<Record<SinkName, SinkOutcome>>;
}

const allSeen = (outcomes: Partial<Record<SinkName, SinkOutcome>>) =>
  Object.values(outcomes).every((o) => o?.seen === true);

/** The smoke test over a canary writer and the sinks' probes (which it neither opens nor closes). */
export async function smoke(
  parts: { writer: CanaryWriter; probes: SinkProbe[]; table: string },
  options: SmokeOptions,
): Promise<SmokeResult> {
  const { writer, probes, table } = parts;
  const log = options.log ?? (() => undefined);
  await Promise.all(
    probes.map((p) =>
      p.start?.(table).catch((error: unknown) => {
        throw new SmokeSetupError(`cannot read the ${p.sink}: ${(error as Error).message}`);
      }),
    ),
  );
  const { id, committedAt } = await writer.insert().catch((error: unknown) => {
    throw new SmokeSetupError(`cannot write the canary into ${writer.table}: ${(error as Error).message}`);
  });
  let removed = false;
  try {
    const names = probes.map((p) => p.sink).join(', ');
    log(`canary ${id} written to ${writer.table}; waiting for ${names} (at most ${options.timeoutMs / 1000} s)…`);
    const sinks = await watchAll(probes, { id, op: 'c', table, committedAt }, options);
    const inserted = allSeen(sinks);
    const gone = await writer.delete(id).catch((error: unknown) => {
      throw new SmokeSetupError(
        `cannot delete the canary (id ${id}) from ${writer.table}: ${(error as Error).message}; delete it by hand`,
      );
    });
    removed = true;
    if (!inserted || options.signal?.aborted) return { ok: false, canaryId: id, sinks, deleted: null };
    log(`canary ${id} deleted; waiting for ${names} to show it…`);
    const deleted = await watchAll(probes, { id, op: 'd', table, committedAt: gone.committedAt }, options);
    return { ok: allSeen(deleted), canaryId: id, sinks, deleted };
  } finally {
    // Whatever went wrong, no canary row stays behind in the source.
    if (!removed) await writer.delete(id).catch(() => undefined);
  }
}

/** The smoke test against a target: opens the source and the probes, runs, closes them. */
export async function smokeTarget(target: SmokeTarget, options: SmokeOptions): Promise<SmokeResult> {
  const { source } = target;
  const writer = await openCanaryWriter(source.connection, source.heartbeatTable);
  const probes: SinkProbe[] = [
    ...(target.cache ? [cacheProbe(target.cache.redis(), target.cache.prefix)] : []),
    ...(target.warehouse ? [warehouseProbe(target.s3, target.warehouse)] : []),
    ...(target.audit ? [auditProbe(target.s3, target.audit)] : []),
  ];
  try {
    return await smoke({ writer, probes, table: `${source.topicPrefix}.${source.heartbeatTable}` }, options);
  } finally {
    await Promise.allSettled([writer.close(), ...probes.map((p) => p.close())]);
  }
}

/** The target of a local run, from the coordinates its run file announces (or a test builds from its context). */
export function localTarget(coordinates: RunCoordinates): SmokeTarget {
  const { source, cache, s3 } = coordinates;
  if (!source.heartbeatTable) {
    throw new SmokeSetupError(
      'the run has no heartbeat table to write a canary into (a --source database without one?)',
    );
  }
  return {
    source: {
      connection: source.connectionString,
      heartbeatTable: source.heartbeatTable,
      topicPrefix: source.topicPrefix,
    },
    cache: cache ? { redis: () => createRedis(cache.url, false), prefix: cache.prefix } : null,
    s3: new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      forcePathStyle: true,
    }),
    warehouse: coordinates.warehouse,
    audit: coordinates.audit,
  };
}

/** The smoke test of a local run. */
export async function runSmoke(coordinates: RunCoordinates, options: SmokeOptions): Promise<SmokeResult> {
  const target = localTarget(coordinates);
  try {
    return await smokeTarget(target, options);
  } finally {
    target.s3.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What the command prints
// ---------------------------------------------------------------------------------------------------------------

const seconds = (ms: number) => `${Number((ms / 1000).toFixed(1))} s`;

/** The verdict in one line: OK, or which sink did not show what, and why if a probe failed. */
export function verdict(result: SmokeResult, timeoutMs: number): string {
  if (result.ok) return `OK: every sink showed the canary and its delete within ${seconds(timeoutMs)}`;
  const missing = (outcomes: Partial<Record<SinkName, SinkOutcome>>, what: string) =>
    SINK_NAMES.flatMap((sink) => {
      const o = outcomes[sink];
      if (!o || o.seen) return [];
      return [`${sink} did not show ${what} within ${seconds(timeoutMs)}${o.lastError ? ` (${o.lastError})` : ''}`];
    });
  const problems =
    result.deleted === null ? missing(result.sinks, 'the canary') : missing(result.deleted, "the canary's delete");
  return `FAILED: ${problems.length > 0 ? problems.join('; ') : 'interrupted'}`;
}

/** The result as a small table and the verdict. */
export function renderSmoke(result: SmokeResult, table: string, timeoutMs: number): string {
  const cell = (o: SinkOutcome | undefined) => (o === undefined ? '–' : o.seen ? `${o.latencyMs} ms` : 'NOT SEEN');
  const rows = SINK_NAMES.filter((s) => result.sinks[s] !== undefined).map((sink) => [
    sink,
    cell(result.sinks[sink]),
    result.deleted === null ? 'not waited for' : cell(result.deleted[sink]),
  ]);
  const absent = SINK_NAMES.filter((s) => result.sinks[s] === undefined);
  const lines = [
    `canary ${result.canaryId} in ${table} (latency: commit → seen)`,
    `  ${'SINK'.padEnd(10)}  ${'INSERT'.padStart(10)}  ${'DELETE'.padStart(14)}`,
    ...rows.map(([sink, insert, remove]) => `  ${sink?.padEnd(10)}  ${insert?.padStart(10)}  ${remove?.padStart(14)}`),
    ...absent.map((sink) => `  ${sink.padEnd(10)}  not checked: no ${sink} lane takes this source`),
    verdict(result, timeoutMs),
  ];
  return `${lines.join('\n')}\n`;
}
