/**
 * npm run bench -- --files [--quick] [--json]
 *
 * Files and bytes of the warehouse change log per 10,000 changes, before and after compaction: 10,000 demo changes
 * (demo-changes.ts: the demo tables, their mix of operations, 200 changes/s, a 500 ms batching window, 3 partitions
 * per topic) through the real warehouse sink into the local S3 (fauxqs, in this process), then the real compaction
 * (functions/compaction) of the closed day. Also the CPU each costs per change, beside the JSON raw floor per record
 * measured in the same run (cpu.ts), so the figures compare across machines.
 */
import { ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { S3WarehouseSink } from '../../functions/adapters/s3-warehouse-sink';
import { ChangeLogCompactor } from '../../functions/compaction/compact';
import { LOCAL_NAMES, startLocalServices } from '../local/services';
import { measure, rawFloor } from './cpu';
import { demoChanges, writeAsTheLane } from './demo-changes';
import { benchEvent } from './fixtures';

const CHANGES = 10_000;
const round = (n: number, digits = 3) => Number(n.toFixed(digits));

async function sizeOf(s3: S3Client, bucket: string, prefix: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  let marker: string | undefined;
  do {
    const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker }));
    for (const o of page.Contents ?? []) {
      if (!o.Key?.endsWith('.parquet')) continue;
      files++;
      bytes += o.Size ?? 0;
    }
    marker = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
  } while (marker);
  return { files, bytes };
}

/** CPU milliseconds (user + system) of this process while `work` runs. */
async function cpuMs(work: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage();
  await work();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

export async function fileBenchmarks({ quick }: { quick: boolean }) {
  const services = await startLocalServices({ redis: null, s3: 'memory' });
  try {
    const s3 = services.clients.s3;
    const bucket = LOCAL_NAMES.warehouseBucket;
    // One day of the demo, compacted the next afternoon (closed after 6 hours).
    const startMs = Date.parse('2026-05-09T12:00:00Z');
    const now = Date.parse('2026-05-10T18:00:00Z');
    const changes = demoChanges({ count: CHANGES, startMs });
    const rounds = quick ? 2 : 4;
    let before = { files: 0, bytes: 0 };
    let after = { files: 0, bytes: 0 };
    let writes = 0;
    const writeMs: number[] = [];
    const compactMs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const prefix = `bench-files-${i}/`;
      const sink = new S3WarehouseSink(s3, { bucket, prefix });
      writeMs.push(
        await cpuMs(async () => {
          writes = await writeAsTheLane(sink, changes);
        }),
      );
      before = await sizeOf(s3, bucket, prefix);
      const compactor = new ChangeLogCompactor(s3, { bucket, prefix, closedAfterHours: 6 });
      compactMs.push(await cpuMs(() => compactor.run(now, 7, Number.POSITIVE_INFINITY)));
      after = await sizeOf(s3, bucket, prefix);
    }
    const event = benchEvent(CHANGES);
    const floor = (await measure({ rawFloor: () => rawFloor(event) }, quick ? 5 : 15)).rawFloor?.min ?? Number.NaN;
    const perChangeUs = (ms: number) => round((ms * 1000) / CHANGES, 2);
    const sinkWriteMs = Math.min(...writeMs);
    const compactionMs = Math.min(...compactMs);
    return {
      changes: CHANGES,
      before: { files: before.files, bytes: before.bytes, changesPerFile: round(CHANGES / before.files, 2) },
      after: { files: after.files, bytes: after.bytes, changesPerFile: round(CHANGES / after.files, 2) },
      filesAfterVsBefore: round(after.files / before.files, 4),
      bytesAfterVsBefore: round(after.bytes / before.bytes),
      compactionVsSinkWrite: round(compactionMs / sinkWriteMs),
      compactionVsRawFloor: round(compactionMs / floor),
      goals: { filesAfterVsBefore: '<= 0.01', bytesAfterVsBefore: '<= 0.5' },
      details: {
        perChangeMicros: {
          rawFloor: perChangeUs(floor),
          sinkWrite: perChangeUs(sinkWriteMs),
          compaction: perChangeUs(compactionMs),
        },
        // CPU of this process, which also serves the local S3: the sink's and the compaction's requests included.
        cpuMs: { rawFloor: round(floor, 1), sinkWrite: round(sinkWriteMs, 1), compaction: round(compactionMs, 1) },
        workload: { ratePerSec: 200, windowMs: 500, partitionsPerTopic: 3, tables: 5, sinkWrites: writes, rounds },
        node: process.version,
      },
    };
  } finally {
    await services.stop();
  }
}
