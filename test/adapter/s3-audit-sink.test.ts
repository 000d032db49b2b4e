import { gunzipSync, gzipSync } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { S3AuditSink } from '../../functions/adapters/s3-audit-sink';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, PartitionBatch, SinkPartition, SinkSchemaChange } from '../../functions/core/types';
import { verifyAuditLog } from '../../tools/lib/audit-verify';
import { READS_IN_FLIGHT } from '../../tools/lib/concurrency';
import { LOCAL_NAMES } from '../../tools/local/services';
import { pgMessage, recordOf } from '../support/builders';
import { countInFlight } from '../support/in-flight';
import { useLocalServices } from '../support/local';

const services = useLocalServices();
const bucket = LOCAL_NAMES.auditBucket;

function events(from: number, count: number): ChangeEvent[] {
  return Array.from({ length: count }, (_, i) => {
    const outcome = new JsonDebeziumDecoder().decode(
      recordOf(pgMessage({ op: 'c', after: { id: from + i }, lsn: 100 + from + i, offset: from + i })),
      1,
    );
    if (outcome.kind !== 'event') throw new Error('not an event');
    return outcome.event;
  });
}

async function writeBatches(
  prefix: string,
  batches: ChangeEvent[][],
  schemaChanges: Array<SinkSchemaChange[] | undefined> = [],
): Promise<unknown> {
  const sink = new S3AuditSink(services().clients.s3, { bucket, prefix });
  const partition: PartitionBatch = { id: 'pg.public.orders-0', topic: 'pg.public.orders', partition: 0, records: [] };
  let state: unknown;
  for (const [i, batch] of batches.entries()) {
    const p: SinkPartition = { partition, events: batch, columns: [], state };
    const changes = schemaChanges[i];
    if (changes) p.schemaChanges = changes;
    const result = await sink.write(p);
    if (!result.ok) throw new Error('audit write failed');
    state = result.state;
  }
  return state;
}

async function keys(prefix: string): Promise<string[]> {
  const page = await services().clients.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key as string).sort();
}

describe('S3AuditSink (local S3)', () => {
  it('chains every change across batches and objects; verify-audit finds the chain intact', async () => {
    // Arrange + Act
    const state = await writeBatches('ok/', [events(0, 3), events(3, 2)]);
    // Assert
    expect(state).toMatchObject({ seq: 5 });
    const report = await verifyAuditLog(services().clients.s3, bucket, 'ok/');
    expect(report.ok).toBe(true);
    expect(report.chains).toEqual([
      {
        chain: expect.stringMatching(/^pg\.public\.orders\/0\/\d+$/),
        objects: 2,
        entries: 5,
        schemaEntries: 0,
        problems: [],
      },
    ]);
  });

  it('reads a long chain a few objects at a time, in order', async () => {
    // Arrange: a chain of many small objects (one per batch, as a busy lane writes them)
    const batches = Array.from({ length: 4 * READS_IN_FLIGHT }, (_, i) => events(i, 1));
    await writeBatches('long/', batches);
    const s3 = services().clients.s3;
    const requests = countInFlight(s3);

    // Act
    let report: Awaited<ReturnType<typeof verifyAuditLog>>;
    try {
      report = await verifyAuditLog(s3, bucket, 'long/');
    } finally {
      requests.restore();
    }

    // Assert
    expect(report.ok).toBe(true);
    expect(report.chains[0]).toMatchObject({ objects: batches.length, entries: batches.length, problems: [] });
    expect(requests.most()).toBe(READS_IN_FLIGHT);
  });

  it('says where a chain breaks when an entry was altered', async () => {
    // Arrange
    await writeBatches('tampered/', [events(0, 3)]);
    const [key] = await keys('tampered/');
    const object = await services().clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = gunzipSync(await (object.Body?.transformToByteArray() ?? new Uint8Array())).toString();
    await services().clients.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: gzipSync(text.replace('"id":1}', '"id":666}')) }),
    );
    // Act
    const report = await verifyAuditLog(services().clients.s3, bucket, 'tampered/');
    // Assert
    expect(report.ok).toBe(false);
    expect(report.chains[0]?.problems[0]).toMatchObject({ kind: 'hash-mismatch', object: key, line: 2, seq: 1 });
  });

  it('detects a missing object as a gap', async () => {
    await writeBatches('gap/', [events(0, 2), events(2, 2), events(4, 2)]);
    const [, middle] = await keys('gap/');
    await services().clients.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: middle }));
    const report = await verifyAuditLog(services().clients.s3, bucket, 'gap/');
    expect(report.chains[0]?.problems.map((p) => p.kind)).toEqual(['gap', 'prev-mismatch']);
  });

  it('rewrites the same object with the same bytes when a batch is replayed from the same chain head', async () => {
    await writeBatches('replay/', [events(0, 3)]);
    await writeBatches('replay/', [events(0, 3)]);
    expect(await keys('replay/')).toHaveLength(1);
    expect((await verifyAuditLog(services().clients.s3, bucket, 'replay/')).chains[0]?.entries).toBe(3);
  });

  it('chains a schema entry before the first change of a new version; it verifies and is no change', async () => {
    // Arrange
    const version = (index: number, fingerprint: string): SinkSchemaChange => ({
      kind: 'version',
      index,
      table: 'pg.public.orders',
      order: `pg:1:${index}`,
      schema: { fingerprint, columns: [{ name: 'id', type: 'int32', optional: false }] },
      version: index + 1,
    });
    const ids: string[] = [];
    // Act
    await writeBatches('schema/', [events(0, 3)], [[version(0, 'f1'), version(2, 'f2')]]);
    const report = await verifyAuditLog(services().clients.s3, bucket, 'schema/', (_chain, changes) => {
      for (const e of changes) ids.push(e.id);
    });
    // Assert
    expect(report.ok).toBe(true);
    expect(report.chains[0]).toMatchObject({ entries: 5, schemaEntries: 2 });
    expect(ids).toHaveLength(3);
    const [key] = await keys('schema/');
    const object = await services().clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const lines = gunzipSync(await (object.Body?.transformToByteArray() ?? new Uint8Array()))
      .toString()
      .trim()
      .split('\n')
      .map((l) => Object.keys(JSON.parse(l)).at(-1));
    expect(lines).toEqual(['schema', 'event', 'event', 'schema', 'event']);
  });

  it('detects a schema entry altered, or a change passed off as a schema entry', async () => {
    // Arrange
    const schemaChange: SinkSchemaChange = {
      kind: 'version',
      index: 0,
      table: 'pg.public.orders',
      order: 'pg:1:0',
      schema: { fingerprint: 'f1', columns: [{ name: 'id', type: 'int32', optional: false }] },
    };
    for (const [prefix, tamper] of [
      ['schema-altered/', (t: string) => t.replace('"fingerprint":"f1"', '"fingerprint":"f9"')],
      ['schema-forged/', (t: string) => t.replace('"event":', '"schema":')],
    ] as const) {
      await writeBatches(prefix, [events(0, 2)], [[schemaChange]]);
      const [key] = await keys(prefix);
      const object = await services().clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const text = gunzipSync(await (object.Body?.transformToByteArray() ?? new Uint8Array())).toString();
      await services().clients.s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: gzipSync(tamper(text)) }),
      );
      // Act
      const report = await verifyAuditLog(services().clients.s3, bucket, prefix);
      // Assert
      expect(report.ok).toBe(false);
      expect(report.chains[0]?.problems[0]).toMatchObject({ kind: 'hash-mismatch' });
    }
  });
});
