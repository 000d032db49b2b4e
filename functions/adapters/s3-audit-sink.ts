import { gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { pad } from '../core/change';
import type { Sink, SinkPartition, SinkPartitionResult } from '../core/types';
import { type ChainHead, chainEntries, GENESIS } from './audit-chain';
import { sinkErrorFrom } from './transient-errors';

export interface S3AuditSinkOptions {
  bucket: string;
  /** Key prefix, e.g. "audit/". */
  prefix: string;
  clock?: () => number;
}

/** The key of an audit object: one chain per topic-partition (and epoch), objects named by their first sequence. */
export function auditObjectKey(
  prefix: string,
  topic: string,
  partition: number,
  epoch: number,
  firstSeq: number,
): string {
  return `${prefix}${topic}/${partition}/${epoch}/${pad(firstSeq, 12)}.ndjson.gz`;
}

/** The Kafka timestamp of the partition's first record written: its first event, or its first DDL record. */
function firstTimestamp(p: SinkPartition): number | undefined {
  const first = p.events[0];
  if (first) return first.kafka.timestamp;
  for (const c of p.schemaChanges ?? []) if (c.kind === 'ddl') return c.change.kafka.timestamp;
  return undefined;
}

function isChainHead(value: unknown): value is ChainHead {
  const v = value as ChainHead | undefined;
  return typeof v?.epoch === 'number' && typeof v.seq === 'number' && typeof v.hash === 'string';
}

/**
 * Audit lane: every change, and the partition's schema history (an entry before the first change of each new table
 * schema version, and the connector's DDL records), append-only, as gzipped NDJSON in an S3 Object Lock bucket, hash-chained per
 * topic-partition. The chain head lives in the lane's checkpoint and is committed with it, after the object was
 * written: a replay from the same checkpoint rewrites the same key with the same bytes (a new object version the
 * bucket keeps anyway), and a bisected replay overwrites it with a prefix of the same chain.
 * One object per partition per batch: an object's content depends only on the head it starts from.
 */
export class S3AuditSink implements Sink {
  private readonly clock: () => number;

  constructor(
    private readonly s3: S3Client,
    private readonly options: S3AuditSinkOptions,
  ) {
    this.clock = options.clock ?? Date.now;
  }

  async write(p: SinkPartition): Promise<SinkPartitionResult> {
    // A new chain's epoch comes from its first record, not the clock, so a replay of that first batch (crash
    // before the checkpoint commit) writes the same key instead of starting a second chain.
    const head: ChainHead = isChainHead(p.state)
      ? p.state
      : { epoch: firstTimestamp(p) ?? this.clock(), seq: 0, hash: GENESIS };
    const { lines, head: next } = chainEntries(head, p.events, p.schemaChanges);
    const key = auditObjectKey(this.options.prefix, p.partition.topic, p.partition.partition, head.epoch, head.seq);
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.options.bucket,
          Key: key,
          Body: gzipSync(`${lines.join('\n')}\n`, { level: 1 }),
          ContentType: 'application/gzip',
          Metadata: {
            'first-seq': String(head.seq),
            'last-seq': String(next.seq - 1),
            'prev-hash': head.hash,
            'last-hash': next.hash,
          },
        }),
      );
    } catch (error) {
      return { ok: false, error: sinkErrorFrom(error, `appending to the audit log of ${p.partition.id}`) };
    }
    return { ok: true, state: next, writtenAt: this.clock() };
  }
}
