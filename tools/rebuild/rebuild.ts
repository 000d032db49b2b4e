/**
 * `npm run rebuild`'s core: a lost sink (the cache flushed or replaced, warehouse objects deleted) restored from the
 * audit log while its lane keeps running, or a table's state at a past time written to a space of its own.
 *
 * 1. While the lanes run, the audit log may not yet hold what the sink's lane had applied before the loss: wait until
 *    the audit lane's committed offsets reach the sink lane's (checkpoints.ts).
 * 2. Read every chain of the audit log, verifying it; refuse a broken one that holds the tables (audit.ts).
 * 3. Keep the changes of the tables asked for (with `asOf`: those committed at or before it), order them by
 *    `source.order`, and replay them through the sink's own write path: the cache's version guard lets a newer change
 *    the lane applies meanwhile win (cache.ts); the warehouse gets the changes its log is missing that the lane will
 *    not write again (warehouse.ts).
 *
 * `asOf` never touches the live sink: cache key prefix `<prefix>-asof-<time>`, warehouse prefix
 * `asof=<time>/<prefix>` (beside the live change log, never under it: readers and the compaction of the live prefix do
 * not see it).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { ChainProblem } from '../../functions/adapters/audit-chain';
import { RedisCacheSink, type RedisLike } from '../../functions/adapters/redis-cache-sink';
import { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import type { Lane } from '../../functions/core/types';
import { type AuditedChange, AuditLogReader, type AuditRead, BrokenChainError, describeProblem } from './audit';
import { repairTable, replayTable } from './cache';
import { type LaneCheckpoints, type LaneOffsets, waitForAudit } from './checkpoints';
import { asOfLabel, bySourceOrder, committedBy } from './order';
import { rebuildTable } from './warehouse';

export type RebuildSink = 'cache' | 'warehouse';
export const REBUILD_SINKS: readonly RebuildSink[] = ['cache', 'warehouse'];

/** Tombstones of deletes replayed into the cache: the lanes' default (lib/stacks/lanes-stack.ts). */
export const DEFAULT_TOMBSTONE_TTL_SECONDS = 7 * 24 * 3600;
/** Reads of the audit log before a live rebuild calls a chain broken, and the pause between them (settledReader). */
const SETTLE_READS = 5;
const SETTLE_PAUSE_MS = 500;
/** Passes over the live warehouse at most (see catchUpWarehouse). */
const WAREHOUSE_PASSES = 5;

export interface RebuildOptions {
  sink: RebuildSink;
  /** Tables as the sinks name them (`pg.public.orders`), or the end of such a name (`public.orders`, `orders`). */
  tables?: readonly string[];
  /** Epoch ms: only changes committed at or before it, into the as-of space. */
  asOf?: number;
  s3: S3Client;
  audit: { bucket: string; prefix: string };
  cache?: { redis: RedisLike; prefix: string; tombstoneTtlSeconds?: number };
  warehouse?: { bucket: string; prefix: string };
  /**
   * The lanes' committed offsets (the dedupe table). Needed to rebuild the live warehouse (which changes the lane
   * writes itself); for the live cache, to wait until the audit log holds what the cache had.
   */
  checkpoints?: LaneCheckpoints;
  /** How long to wait for the audit lane to catch up with the sink's lane. @default 60 s */
  catchUpTimeoutMs?: number;
  /** Repair rounds of the live cache (cache.ts). @default 10 */
  repairRounds?: number;
  /** Pause between repair rounds. @default 300 ms */
  repairPauseMs?: number;
  log?: (message: string) => void;
}

export interface TableSummary {
  /** Changes of the table in the audit log (up to `asOf`). */
  changes: number;
  /** Changes the rebuild applied (cache: accepted by the version guard; warehouse: written). */
  applied: number;
  /** Cache: changes refused because the row held the same or a newer version. Warehouse: 0. */
  refusedOlder: number;
  /** Cache: changes of rows without a key, which the cache does not hold. */
  skipped?: number;
  /** Cache: rows found wrong after a lane's change kept columns of a lost row, lost and replayed again. */
  repaired?: number;
  /**
   * Cache: rows found older than their newest audited change, or missing, in a repair round (a change the lane wrote
   * just before the loss and committed after the rebuild read its offsets), replayed again.
   */
  caughtUp?: number;
  /** Cache: rows whose newest version was not audited yet when the rebuild ended (not checked). */
  unchecked?: number;
  /** Warehouse: changes the change log already held. */
  present?: number;
  /** Warehouse: changes past the lane's committed offset (the lane writes them itself). */
  pendingInLane?: number;
  /** Warehouse: changes the change log cannot hold (as when the lane met them). */
  rejected?: number;
}

export interface RebuildSummary {
  sink: RebuildSink;
  tables: Record<string, TableSummary>;
  /** The as-of time (ISO), or null for the live sink. */
  asOf: string | null;
  /** Where it wrote: the cache key prefix, or `s3://bucket/prefix`. */
  target: string;
  ms: number;
}

/** A rebuild that cannot start: a missing sink, unknown or ambiguous tables, no checkpoints for the live warehouse. */
export class RebuildSetupError extends Error {
  override readonly name = 'RebuildSetupError';
}

/** Where an as-of rebuild writes, per sink. */
export function asOfTarget(sink: RebuildSink, livePrefix: string, asOf: number): string {
  return sink === 'cache' ? `${livePrefix}-asof-${asOfLabel(asOf)}` : `asof=${asOfLabel(asOf)}/${livePrefix}`;
}

/** Whether table id `table` is what `name` asks for: the whole id, or its end after a dot. */
export function namesTable(name: string, table: string): boolean {
  return table === name || table.endsWith(`.${name}`);
}

/** The table ids the names ask for, among those the audit log knows; each name must mean exactly one. */
export function resolveTables(names: readonly string[], known: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const name of names) {
    const matches = [...known].filter((t) => namesTable(name, t));
    if (matches.length === 0) {
      const list = [...known].sort().join(', ') || 'none';
      throw new RebuildSetupError(`the audit log holds no changes of ${name} (its tables: ${list})`);
    }
    const exact = matches.find((t) => t === name);
    if (!exact && matches.length > 1) {
      throw new RebuildSetupError(`${name} could be any of ${matches.sort().join(', ')}: name one in full`);
    }
    out.add(exact ?? (matches[0] as string));
  }
  return [...out].sort();
}

export async function rebuild(options: RebuildOptions): Promise<RebuildSummary> {
  const started = performance.now();
  const log = options.log ?? (() => undefined);
  const { sink, asOf } = options;
  const live = asOf === undefined;
  const names = options.tables ?? [];
  const wanted = (table: string) => names.length === 0 || names.some((n) => namesTable(n, table));
  const lane: Lane = sink;
  const sinkWhere = sink === 'cache' ? options.cache : options.warehouse;
  if (!sinkWhere) throw new RebuildSetupError(`no ${sink} to rebuild: this run or environment has none`);
  if (live && sink === 'warehouse' && !options.checkpoints) {
    throw new RebuildSetupError(
      "rebuilding the live warehouse needs the lanes' checkpoints (the dedupe table): without them the rebuild cannot tell which changes the lane writes itself",
    );
  }
  if (live && !options.checkpoints) {
    log(
      "no lane checkpoints: changes the cache lane applied just before the loss that are not audited yet are not waited for (they come back with the row's next change)",
    );
  }

  // 1 + 2: the audit log, once it holds what the sink's lane had (topics named after the tables; a table found in
  // another topic too, a catch-all, makes the rebuild wait for that one and read again).
  const reader = settledReader(
    new AuditLogReader(options.s3, options.audit),
    live && options.checkpoints !== undefined,
  );
  let waited = false;
  const waitFor = async (relevant: (topic: string) => boolean): Promise<LaneOffsets | null> => {
    if (!live || !options.checkpoints) return null;
    const offsets = await waitForAudit(options.checkpoints, lane, relevant, {
      timeoutMs: options.catchUpTimeoutMs ?? 60_000,
      // Said once: the repair rounds wait again each time.
      log: (message) => {
        if (!waited) log(message);
        waited = true;
      },
    });
    return offsets;
  };
  let laneOffsets = await waitFor(wanted);
  let read = await reader.read(wanted);
  const tables = names.length > 0 ? resolveTables(names, read.known) : [...read.known].sort();
  const inTables = new Set(tables);
  const otherTopics = new Set(
    [...read.tables.entries()]
      .filter(([t]) => inTables.has(t))
      .flatMap(([, changes]) => changes.map((c) => c.event.kafka.topic))
      .filter((topic) => !wanted(topic)),
  );
  if (laneOffsets && otherTopics.size > 0) {
    laneOffsets = new Map([...laneOffsets, ...((await waitFor((t) => otherTopics.has(t))) ?? [])]);
    read = await reader.read(wanted);
  }
  const relevant = (topic: string) => wanted(topic) || otherTopics.has(topic);
  for (const broken of read.otherBroken) {
    log(
      `audit chain ${broken.chain} is broken (${describeProblem(broken.problems[0] as ChainProblem)}): it holds none of the tables`,
    );
  }

  // 3: per table, the changes in source order, up to asOf.
  const selected = new Map<string, AuditedChange[]>();
  let undated = 0;
  for (const table of tables) {
    const all = read.tables.get(table) ?? [];
    const kept = asOf === undefined ? all : all.filter((c) => committedBy(c.event, asOf));
    if (asOf !== undefined) undated += all.filter((c) => c.event.source.commitTs === null).length;
    selected.set(
      table,
      kept.slice().sort((a, b) => bySourceOrder(a.event, b.event)),
    );
  }
  if (undated > 0) log(`${undated} change(s) carry no commit time and are left out of the as-of state`);

  const prefix = asOf === undefined ? sinkWhere.prefix : asOfTarget(sink, sinkWhere.prefix, asOf);
  const summary: RebuildSummary = {
    sink,
    tables: {},
    asOf: asOf === undefined ? null : asOfLabel(asOf),
    target: sink === 'cache' ? prefix : `s3://${(options.warehouse as { bucket: string }).bucket}/${prefix}`,
    ms: 0,
  };
  if (sink === 'cache') {
    const cache = options.cache as NonNullable<RebuildOptions['cache']>;
    const target = new RedisCacheSink(cache.redis, {
      prefix,
      tombstoneTtlSeconds: cache.tombstoneTtlSeconds ?? DEFAULT_TOMBSTONE_TTL_SECONDS,
    });
    for (const [table, changes] of selected) {
      const events = changes.map((c) => c.event);
      const counts = await replayTable(target, cache.redis, table, events);
      summary.tables[table] = { changes: events.length, ...counts };
      log(
        `${table}: ${events.length} change(s) replayed, ${counts.applied} applied, ${counts.refusedOlder} refused as older`,
      );
    }
    if (live) {
      await repairCache(target, cache.redis, summary, inTables, options, async () => {
        await waitFor(relevant);
        return reader.read(wanted);
      });
    }
  } else {
    const where = { bucket: (options.warehouse as { bucket: string }).bucket, prefix };
    const target = new S3WarehouseSink(options.s3, where);
    for (const [table, changes] of selected) {
      const counts = await rebuildTable(target, options.s3, where, table, changes, live ? laneOffsets : null);
      summary.tables[table] = { changes: changes.length, refusedOlder: 0, ...counts };
      log(
        `${table}: ${counts.applied} change(s) restored, ${counts.present} already there, ${counts.pendingInLane} left to the lane`,
      );
    }
    if (live) await catchUpWarehouse(target, options, where, summary, selected, waitFor, reader, wanted);
  }
  summary.ms = Math.round(performance.now() - started);
  return summary;
}

/**
 * While the lanes run, the audit lane may be rewriting the last object of a chain (a replay after a failed checkpoint
 * commit writes the same key again, a prefix or an extension of the same chain), and a read that lists and gets
 * objects one after another can meet a chain between its old and new last object: it looks broken for a moment. A
 * live rebuild reads again a few times before it calls a chain broken; a chain that really was changed stays broken.
 */
function settledReader(reader: AuditLogReader, live: boolean): Pick<AuditLogReader, 'read'> {
  if (!live) return reader;
  return {
    async read(wanted) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await reader.read(wanted);
        } catch (error) {
          if (!(error instanceof BrokenChainError) || attempt >= SETTLE_READS) throw error;
          await new Promise((r) => setTimeout(r, SETTLE_PAUSE_MS));
        }
      }
    },
  };
}

/**
 * Further passes over the live warehouse, each with the lane's offsets read anew: a change the lane wrote just before
 * the loss and committed only after the first pass read its offsets is left to the lane by that pass, but the lane
 * will not write it again. A pass writes only committed changes the log lacks, so passes stop once one writes
 * nothing (at most {@link WAREHOUSE_PASSES}).
 */
async function catchUpWarehouse(
  target: S3WarehouseSink,
  options: RebuildOptions,
  where: { bucket: string; prefix: string },
  summary: RebuildSummary,
  selected: ReadonlyMap<string, AuditedChange[]>,
  waitFor: (relevant: (topic: string) => boolean) => Promise<LaneOffsets | null>,
  reader: Pick<AuditLogReader, 'read'>,
  wanted: (topic: string) => boolean,
): Promise<void> {
  for (let pass = 2; pass <= WAREHOUSE_PASSES; pass++) {
    const offsets = await waitFor(wanted);
    const read = await reader.read(wanted);
    let written = 0;
    for (const table of selected.keys()) {
      const changes = (read.tables.get(table) ?? []).slice().sort((a, b) => bySourceOrder(a.event, b.event));
      const counts = await rebuildTable(target, options.s3, where, table, changes, offsets);
      const entry = summary.tables[table] as TableSummary;
      entry.applied += counts.applied;
      entry.rejected = (entry.rejected ?? 0) + counts.rejected;
      entry.pendingInLane = counts.pendingInLane;
      written += counts.applied;
    }
    if (written === 0) return;
    options.log?.(`pass ${pass}: ${written} change(s) the lane committed after the first pass read its offsets`);
  }
}

/**
 * The live cache's repair rounds (cache.ts), each over the audit log read again once it caught up with the cache lane
 * anew: a row's version the lane wrote since must be audited to be checked.
 */
async function repairCache(
  target: RedisCacheSink,
  redis: RedisLike,
  summary: RebuildSummary,
  tables: ReadonlySet<string>,
  options: RebuildOptions,
  readAudit: () => Promise<AuditRead>,
): Promise<void> {
  const rounds = options.repairRounds ?? 10;
  for (let round = 1; round <= rounds; round++) {
    const read = await readAudit();
    let repaired = 0;
    let behind = 0;
    let unchecked = 0;
    for (const table of tables) {
      const result = await repairTable(
        target,
        redis,
        table,
        (read.tables.get(table) ?? []).map((c) => c.event),
      );
      const entry = summary.tables[table] as TableSummary;
      entry.repaired = (entry.repaired ?? 0) + result.repaired;
      entry.caughtUp = (entry.caughtUp ?? 0) + result.behind;
      entry.unchecked = result.unaudited;
      repaired += result.repaired;
      behind += result.behind;
      unchecked += result.unaudited;
    }
    if (repaired > 0)
      options.log?.(`repair round ${round}: ${repaired} row(s) lost a lane's change and were replayed again`);
    if (behind > 0) options.log?.(`repair round ${round}: ${behind} row(s) behind the audit log were replayed again`);
    if (repaired === 0 && behind === 0 && unchecked === 0) return;
    await new Promise((r) => setTimeout(r, options.repairPauseMs ?? 300));
  }
}
