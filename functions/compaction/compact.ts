import { createHash } from 'node:crypto';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { type FileMetaData, parquetMetadata, parquetReadObjects, type SchemaElement } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { CdcError } from '../core/errors';

/**
 * Compaction of the warehouse's change log. The lane writes one Parquet file per table, commit day and
 * topic-partition per batch: thousands of small files per table and day, each costing readers a request and a footer.
 * Once a day is closed (no longer written to, bar late changes), its files are rewritten as one file per schema (files
 * of one day differ in schema only across a schema change) and the small files are deleted.
 *
 * The rows are copied exactly: values are read as stored (timestamps and dates as their integers, JSON as written) and
 * written with the input files' own schema, so a reader sees the same columns, types and values, and `_cdc_id`,
 * `_cdc_order` and `_cdc_processed_at` keep their meaning (the current-state merge does not apply a compacted change
 * again, and would change nothing if it did).
 *
 * A compaction of a set of files, step by step, so that a run that dies anywhere is finished or undone by the next:
 * 1. a manifest (`<prefix>_compaction/table=…/date=….json`) names the inputs and the outputs about to be written;
 * 2. the outputs are written (named after a digest of their inputs, so writing them again writes the same objects);
 * 3. the inputs are deleted (DeleteObjects);
 * 4. the manifest is deleted.
 * A run that finds a manifest older than a run can last finishes it when every output exists (deletes the inputs),
 * else deletes the outputs it finds and starts over. Between steps 2 and 3 a reader listing the day sees each change
 * twice, once in an input and once in an output: readers that count changes keep one row per `_cdc_id` (the named
 * queries do; the merge takes the latest change per key, which a copy does not change). A gap, which nothing could
 * detect, is never possible: inputs go only after their outputs are written.
 */

export interface CompactionOptions {
  bucket: string;
  /** The change log's key prefix ("changes/"). */
  prefix: string;
  /** A day is compacted this many hours after it ended (UTC). */
  closedAfterHours: number;
  /** Input bytes per output file: a day with more is compacted in several files. @default 64 MiB */
  maxInputBytes?: number;
  /** A compacted file this large is left as it is. @default half of maxInputBytes */
  fullBytes?: number;
  /** A manifest older than this belongs to a run that stopped. @default 15 minutes (the function's timeout) */
  staleManifestMs?: number;
}

/** What one run did. */
export interface CompactionSummary {
  partitions: number;
  inputFiles: number;
  inputBytes: number;
  outputFiles: number;
  outputBytes: number;
  /** Interrupted compactions of earlier runs finished (inputs deleted) or undone (outputs deleted). */
  resumed: number;
  /** Partitions left for the next run (the time ran out). */
  deferred: number;
}

export type CompactionErrorCode = 'S3_UNAVAILABLE' | 'UNREADABLE_FILE';

/** A compaction that could not complete. S3 trouble is retryable; a file hyparquet cannot read is not. */
export class CompactionError extends CdcError {
  readonly retryable: boolean;
  constructor(
    readonly code: CompactionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.retryable = code === 'S3_UNAVAILABLE';
  }
}

interface StoredFile {
  key: string;
  size: number;
}

interface Manifest {
  inputs: string[];
  outputs: string[];
  createdAt: number;
}

const COMPACTED = 'compacted+';
const DAY_MS = 86_400_000;

/** Identity parsers: read values as stored, so they are written back unchanged. */
const RAW = {
  timestampFromMilliseconds: (v: bigint) => v,
  timestampFromMicroseconds: (v: bigint) => v,
  timestampFromNanoseconds: (v: bigint) => v,
  dateFromDays: (v: number) => v,
};

type ColumnData = Parameters<typeof parquetWriteBuffer>[0]['columnData'][number];

/** A day partition's folder: `<prefix>table=<id>/date=<day>/`. */
export function partitionDay(partition: string): string | undefined {
  return /\/date=(\d{4}-\d{2}-\d{2})\/$/.exec(partition)?.[1];
}

export class ChangeLogCompactor {
  private readonly maxInputBytes: number;
  private readonly fullBytes: number;
  private readonly staleManifestMs: number;

  constructor(
    private readonly s3: S3Client,
    private readonly options: CompactionOptions,
  ) {
    this.maxInputBytes = options.maxInputBytes ?? 64 * 1024 * 1024;
    this.fullBytes = options.fullBytes ?? this.maxInputBytes / 2;
    this.staleManifestMs = options.staleManifestMs ?? 15 * 60_000;
  }

  /** The day partitions closed at `now`, of days at most `days` before it, oldest first. */
  async closedPartitions(now: number, days: number): Promise<string[]> {
    const closedBefore = now - this.options.closedAfterHours * 3_600_000;
    const earliest = new Date(now - days * DAY_MS).toISOString().slice(0, 10);
    const tables = (await this.list(this.options.prefix, '/')).prefixes.filter((p) =>
      p.slice(this.options.prefix.length).startsWith('table='),
    );
    const partitions: string[] = [];
    for (const table of tables) {
      for (const partition of (await this.list(table, '/')).prefixes) {
        const day = partitionDay(partition);
        if (day === undefined || day < earliest) continue;
        // The day is closed once its end (next midnight, UTC) is closedAfterHours in the past.
        if (Date.parse(`${day}T00:00:00Z`) + DAY_MS <= closedBefore) partitions.push(partition);
      }
    }
    return partitions.sort(
      (a, b) => (partitionDay(a) ?? '').localeCompare(partitionDay(b) ?? '') || a.localeCompare(b),
    );
  }

  /** Compacts every closed partition of the last `days` days while `deadline` allows. */
  async run(now: number, days: number, deadline: number, clock: () => number = Date.now): Promise<CompactionSummary> {
    const summary: CompactionSummary = {
      partitions: 0,
      inputFiles: 0,
      inputBytes: 0,
      outputFiles: 0,
      outputBytes: 0,
      resumed: 0,
      deferred: 0,
    };
    const partitions = await this.closedPartitions(now, days);
    for (const [i, partition] of partitions.entries()) {
      if (clock() > deadline) {
        summary.deferred = partitions.length - i;
        break;
      }
      const done = await this.compactPartition(partition, now);
      summary.partitions += done.outputFiles > 0 ? 1 : 0;
      summary.inputFiles += done.inputFiles;
      summary.inputBytes += done.inputBytes;
      summary.outputFiles += done.outputFiles;
      summary.outputBytes += done.outputBytes;
      summary.resumed += done.resumed;
    }
    return summary;
  }

  /** Compacts one day partition (`<prefix>table=<id>/date=<day>/`). */
  async compactPartition(partition: string, now: number): Promise<Omit<CompactionSummary, 'partitions' | 'deferred'>> {
    const result = { inputFiles: 0, inputBytes: 0, outputFiles: 0, outputBytes: 0, resumed: 0 };
    const manifestKey = `${this.options.prefix}_compaction/${partition.slice(this.options.prefix.length, -1)}.json`;
    const pending = await this.readManifest(manifestKey);
    if (pending !== undefined) {
      // A manifest this young is a run still going on (a schedule's duplicate invocation): leave the day to it.
      if (now - pending.createdAt < this.staleManifestMs) return result;
      await this.finish(manifestKey, pending, new Set((await this.list(partition)).files.map((f) => f.key)));
      result.resumed = 1;
    }
    const files = (await this.list(partition)).files.filter(
      (f) => f.key.endsWith('.parquet') && !isHidden(f.key) && !(isCompacted(f.key) && f.size >= this.fullBytes),
    );
    for (const chunk of this.chunks(files)) {
      if (chunk.length < 2) continue;
      const inputs = chunk.map((f) => f.key);
      const bodies = await Promise.all(chunk.map((f) => this.read(f.key)));
      const outputs = await encodeCompacted(partition, inputs, bodies);
      const manifest: Manifest = { inputs, outputs: outputs.map((o) => o.key), createdAt: now };
      await this.attempt(`writing ${manifestKey}`, (s3) =>
        s3.send(
          new PutObjectCommand({
            Bucket: this.options.bucket,
            Key: manifestKey,
            Body: JSON.stringify(manifest),
            ContentType: 'application/json',
          }),
        ),
      );
      for (const output of outputs) {
        await this.attempt(`writing ${output.key}`, (s3) =>
          s3.send(
            new PutObjectCommand({
              Bucket: this.options.bucket,
              Key: output.key,
              Body: output.body,
              ContentType: 'application/vnd.apache.parquet',
            }),
          ),
        );
        result.outputBytes += output.body.byteLength;
      }
      await this.deleteAll(inputs);
      await this.attempt('deleting manifest', (s3) =>
        s3.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: manifestKey })),
      );
      result.inputFiles += chunk.length;
      result.inputBytes += chunk.reduce((sum, f) => sum + f.size, 0);
      result.outputFiles += outputs.length;
    }
    return result;
  }

  /** Groups files, in key order, into runs of at most maxInputBytes (a larger file is a run of its own). */
  private chunks(files: readonly StoredFile[]): StoredFile[][] {
    const chunks: StoredFile[][] = [];
    let current: StoredFile[] = [];
    let bytes = 0;
    for (const file of [...files].sort((a, b) => (a.key < b.key ? -1 : 1))) {
      if (current.length > 0 && bytes + file.size > this.maxInputBytes) {
        chunks.push(current);
        current = [];
        bytes = 0;
      }
      current.push(file);
      bytes += file.size;
    }
    if (current.length > 0) chunks.push(current);
    return chunks;
  }

  /** Completes (every output written: delete the inputs) or undoes (delete the outputs) an interrupted compaction. */
  private async finish(manifestKey: string, manifest: Manifest, present: Set<string>): Promise<void> {
    if (manifest.outputs.every((key) => present.has(key))) {
      await this.deleteAll(manifest.inputs.filter((key) => present.has(key)));
    } else {
      await this.deleteAll(manifest.outputs.filter((key) => present.has(key)));
    }
    await this.attempt('deleting manifest', (s3) =>
      s3.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: manifestKey })),
    );
  }

  private async readManifest(key: string): Promise<Manifest | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      return JSON.parse((await object.Body?.transformToString()) ?? '') as Manifest;
    } catch (error) {
      if ((error as Error)?.name === 'NoSuchKey') return undefined;
      throw s3Error(error, `reading ${key}`);
    }
  }

  private async read(key: string): Promise<ArrayBuffer> {
    const object = await this.attempt(`reading ${key}`, (s3) =>
      s3.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key })),
    );
    const bytes = (await object.Body?.transformToByteArray()) ?? new Uint8Array();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  private async deleteAll(keys: readonly string[]): Promise<void> {
    for (let start = 0; start < keys.length; start += 1000) {
      const batch = keys.slice(start, start + 1000);
      const response = await this.attempt(`deleting ${batch.length} compacted files`, (s3) =>
        s3.send(
          new DeleteObjectsCommand({
            Bucket: this.options.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      );
      const failed = response.Errors ?? [];
      if (failed.length > 0) {
        throw new CompactionError(
          'S3_UNAVAILABLE',
          `deleting compacted files: ${failed.length} not deleted (${failed[0]?.Key}: ${failed[0]?.Code})`,
        );
      }
    }
  }

  /** Files and common prefixes under a prefix (ListObjects v1, paged by marker). */
  private async list(prefix: string, delimiter?: string): Promise<{ files: StoredFile[]; prefixes: string[] }> {
    const files: StoredFile[] = [];
    const prefixes: string[] = [];
    let marker: string | undefined;
    do {
      const page = await this.attempt(`listing ${prefix}`, (s3) =>
        s3.send(
          new ListObjectsCommand({ Bucket: this.options.bucket, Prefix: prefix, Delimiter: delimiter, Marker: marker }),
        ),
      );
      for (const o of page.Contents ?? []) files.push({ key: o.Key as string, size: o.Size ?? 0 });
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) prefixes.push(p.Prefix);
      marker = page.IsTruncated ? (page.NextMarker ?? page.Contents?.at(-1)?.Key) : undefined;
    } while (marker);
    return { files, prefixes };
  }

  /** An S3 call whose failure becomes a CompactionError saying what was being done. */
  private async attempt<T>(what: string, call: (s3: S3Client) => Promise<T>): Promise<T> {
    try {
      return await call(this.s3);
    } catch (error) {
      throw s3Error(error, what);
    }
  }
}

function s3Error(error: unknown, what: string): CompactionError {
  if (error instanceof CompactionError) return error;
  const name = (error as { name?: string })?.name ?? 'Error';
  return new CompactionError('S3_UNAVAILABLE', `${what}: ${name}: ${(error as Error)?.message}`, { cause: error });
}

/** Athena, Hive and Spark skip files whose names start with `_` or `.`. */
function isHidden(key: string): boolean {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return name.startsWith('_') || name.startsWith('.');
}

function isCompacted(key: string): boolean {
  return key.slice(key.lastIndexOf('/') + 1).startsWith(COMPACTED);
}

/** Two files can share an output when their columns agree in name, order, type and annotations. */
function schemaSignature(metadata: FileMetaData): string {
  return JSON.stringify(
    metadata.schema.slice(1).map((e) => [e.name, e.type, e.converted_type, e.logical_type, e.repetition_type]),
    (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
  );
}

/**
 * The compacted files of a set of inputs: the rows of each schema's files, in input order, in one file with that
 * schema. Column options suit a large file: statistics where readers filter (`_cdc_processed_at`, `_cdc_commit_ts`,
 * `_cdc_offset`, `_cdc_order`, the table's columns), none on JSON columns and on `_cdc_id` (unique per row).
 */
export async function encodeCompacted(
  partition: string,
  inputs: readonly string[],
  bodies: readonly ArrayBuffer[],
): Promise<Array<{ key: string; body: Uint8Array }>> {
  const groups = new Map<string, { schema: SchemaElement[]; rows: Array<Record<string, unknown>>; files: number }>();
  for (const [i, body] of bodies.entries()) {
    let metadata: FileMetaData;
    let rows: Array<Record<string, unknown>>;
    try {
      metadata = parquetMetadata(body);
      rows = await parquetReadObjects({ file: body, metadata, parsers: RAW });
    } catch (error) {
      throw new CompactionError('UNREADABLE_FILE', `${inputs[i]}: ${(error as Error).message}`, { cause: error });
    }
    const signature = schemaSignature(metadata);
    let group = groups.get(signature);
    if (!group) {
      group = { schema: metadata.schema, rows: [], files: 0 };
      groups.set(signature, group);
    }
    for (const row of rows) group.rows.push(row);
    group.files++;
  }
  const digest = createHash('sha256').update(inputs.join('\n')).digest('hex').slice(0, 16);
  return [...groups.values()].map((group, index) => {
    const columnData = group.schema.slice(1).map((element): ColumnData => {
      const name = element.name;
      const unique = name === '_cdc_id';
      const json = element.converted_type === 'JSON';
      return {
        name,
        data: group.rows.map((row) => row[name] ?? null),
        ...(unique ? { encoding: 'PLAIN' as const } : {}),
        ...(unique || json ? { statistics: false } : {}),
      } as ColumnData;
    });
    const body = parquetWriteBuffer({
      columnData,
      schema: group.schema,
      kvMetadata: [
        { key: 'cdc-sync.format', value: 'change-log/1' },
        { key: 'cdc-sync.compacted-from', value: String(group.files) },
      ],
      createdBy: 'cdc-sync',
    });
    return { key: `${partition}${COMPACTED}${digest}+${index}.parquet`, body: new Uint8Array(body) };
  });
}
