/**
 * Rebuilding the warehouse's change log: the audited changes it is missing, written through the warehouse sink's own
 * write path (S3WarehouseSink.write: the same Parquet files, keys and column types as the lane's).
 *
 * The change log is append-only and a reader takes each change once, so a rebuild must add every lost change exactly
 * once, while the lane goes on appending. A file's key is derived from its first change and the batch it came in, and
 * the lane's batches cannot be told from the audit log (the audit lane batches on its own), so a replay cannot
 * reproduce the lost keys. Instead it writes exactly the changes that are
 *
 * - at or below the offset the warehouse lane has committed on their topic-partition (what lies beyond, the lane
 *   writes itself: it is on its way), and
 * - not in the table's change log now (by `_cdc_id`: what survived, or what an earlier rebuild restored).
 *
 * The lane never writes a committed offset again, so nothing is doubled however the two interleave; running the
 * rebuild again finds its own files and writes nothing. The files carry the changes' own topic, partition and first
 * offset in their names, so a reader cannot tell them from the lane's, nor needs to.
 * An `--as-of` rebuild writes every change up to that time into a prefix of its own, which no lane writes to.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import type { ChangeEvent, ColumnTypes, SinkPartition } from '../../functions/core/types';
import { downloadChangeLog, openWarehouse } from '../lib/warehouse';
import type { AuditedChange } from './audit';
import { type LaneOffsets, partitionKey } from './checkpoints';
import { bySourceOrder } from './order';

/** Changes per file at most (the lane's batches are of the same order). */
const CHUNK = 1000;

export interface WarehouseCounts {
  /** Changes written (restored) by the rebuild. */
  applied: number;
  /** Changes the change log already holds. */
  present: number;
  /** Changes past the lane's committed offset: the lane writes them itself. */
  pendingInLane: number;
  /** Changes the change log cannot hold (SINK_REJECTED, as when the lane met them: dead-lettered there). */
  rejected: number;
}

/** The change ids in one table's change log under `prefix` now. */
export async function idsInChangeLog(
  s3: S3Client,
  where: { bucket: string; prefix: string },
  table: string,
): Promise<Set<string>> {
  const dir = await mkdtemp(join(tmpdir(), 'cdc-rebuild-'));
  try {
    const files = await downloadChangeLog(s3, where.bucket, `${where.prefix}table=${table}/`, dir);
    if (files === 0) return new Set();
    const warehouse = await openWarehouse(dir);
    try {
      const glob = join(dir, '**', '*.parquet').replaceAll("'", "''");
      const rows = await warehouse.query(
        `SELECT DISTINCT _cdc_id AS id FROM read_parquet('${glob}', union_by_name = true)`,
      );
      return new Set(rows.map((r) => String(r.id)));
    } finally {
      warehouse.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Restores one table's missing changes. `laneOffsets`: the warehouse lane's committed offsets (null for an as-of
 * prefix, which no lane writes to: every change goes).
 */
export async function rebuildTable(
  sink: S3WarehouseSink,
  s3: S3Client,
  where: { bucket: string; prefix: string },
  table: string,
  changes: readonly AuditedChange[],
  laneOffsets: LaneOffsets | null,
): Promise<WarehouseCounts> {
  const counts: WarehouseCounts = { applied: 0, present: 0, pendingInLane: 0, rejected: 0 };
  const due = changes.filter(({ event }) => {
    if (laneOffsets === null) return true;
    const committed = laneOffsets.get(partitionKey(event.kafka.topic, event.kafka.partition));
    const mine = committed !== undefined && event.kafka.offset <= committed;
    if (!mine) counts.pendingInLane++;
    return mine;
  });
  // Read after the lane's offsets: whatever the lane wrote up to them is in the log by now.
  const present = await idsInChangeLog(s3, where, table);
  const byPartition = new Map<string, AuditedChange[]>();
  for (const change of due) {
    if (present.has(change.event.id)) {
      counts.present++;
      continue;
    }
    const key = partitionKey(change.event.kafka.topic, change.event.kafka.partition);
    const list = byPartition.get(key);
    if (list) list.push(change);
    else byPartition.set(key, [change]);
  }
  for (const list of byPartition.values()) {
    // In the partition's own order, so each file covers a stretch of it as the lane's do.
    list.sort((a, b) => a.event.kafka.offset - b.event.kafka.offset || bySourceOrder(a.event, b.event));
    for (let i = 0; i < list.length; i += CHUNK) {
      const chunk = list.slice(i, i + CHUNK);
      const rejected = await write(
        sink,
        chunk.map((c) => c.event),
        chunk.map((c) => c.columns),
      );
      counts.rejected += rejected;
      counts.applied += chunk.length - rejected;
    }
  }
  return counts;
}

/** Writes one file's worth; a failed write is tried again (same changes, same keys). Returns how many were refused. */
async function write(
  sink: S3WarehouseSink,
  events: ChangeEvent[],
  columns: Array<ColumnTypes | undefined>,
): Promise<number> {
  const first = events[0] as ChangeEvent;
  const partition: SinkPartition = {
    partition: {
      id: `${first.kafka.topic}-${first.kafka.partition}`,
      topic: first.kafka.topic,
      partition: first.kafka.partition,
      records: [],
    },
    events,
    columns,
    state: undefined,
  };
  let last = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    const result = await sink.write(partition);
    if (result.ok) return result.rejected?.length ?? 0;
    last = result.error.message;
    await new Promise((r) => setTimeout(r, 200 * attempt));
  }
  throw new Error(`the warehouse refused the rebuild's write: ${last}`);
}
