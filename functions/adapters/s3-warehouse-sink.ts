import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { pad, tableIdOf } from '../core/change';
import { digestId } from '../core/dedupe';
import { SinkError } from '../core/errors';
import type {
  ChangeEvent,
  ColumnTypes,
  Sink,
  SinkPartition,
  SinkPartitionResult,
  SinkSchemaChange,
} from '../core/types';
import { changeLogParquet } from './change-log-parquet';
import { sinkErrorFrom } from './transient-errors';

export interface S3WarehouseSinkOptions {
  bucket: string;
  /** Key prefix, e.g. "changes/". */
  prefix: string;
  clock?: () => number;
}

interface FileGroup {
  table: string;
  date: string;
  events: ChangeEvent[];
  columns: Array<ColumnTypes | undefined>;
  /** Each event's index in the partition. */
  indexes: number[];
}

type Rejected = NonNullable<Extract<SinkPartitionResult, { ok: true }>['rejected']>;

/**
 * Warehouse lane: appends each partition's new changes to the S3 data lake as Parquet, one file per table and
 * commit date (Hive-style `table=…/date=…/` prefixes for Athena and Glue).
 *
 * Beside the change log it keeps each table's schema history: `<prefix>_schemas/<table>/<fingerprint>.json` per schema
 * version the records carried (columns, the first order this lane saw it at) and `<prefix>_schemas/<table>/ddl-<order>.json`
 * per DDL the connector reported. Keys are deterministic, so a replay rewrites the same objects; Athena and Hive skip
 * paths starting with `_`, so the history never reads as data.
 *
 * The object key is derived from the first change in the file (topic, partition, Kafka offset, id digest). A
 * replay of the same batch from the same checkpoint writes the same keys with the same content, so a retried batch
 * never leaves a second copy; a bisected retry overwrites the first half's key with a subset and writes the rest
 * under the second half's first offset, so no change is lost or doubled either.
 *
 * There is no version guard to apply on write: the change log is append-only and every row carries `_cdc_order`;
 * readers take the latest change per key by that order (see docs/operations.md, "Query the warehouse").
 */
export class S3WarehouseSink implements Sink {
  private readonly clock: () => number;

  constructor(
    private readonly s3: S3Client,
    private readonly options: S3WarehouseSinkOptions,
  ) {
    this.clock = options.clock ?? Date.now;
  }

  /** The object key of a file of changes (exported for tests and tooling). */
  objectKey(group: Pick<FileGroup, 'table' | 'date'>, first: ChangeEvent, redrive = false): string {
    const { topic, partition, offset } = first.kafka;
    // A redrive writes its own files: their offsets may be ones the stream's files are named after.
    const kind = redrive ? '+redrive' : '';
    return `${this.options.prefix}table=${group.table}/date=${group.date}/${topic}+${partition}${kind}+${pad(offset, 20)}+${digestId(first.id)}.parquet`;
  }

  /** The object key of a schema history entry (exported for tests and tooling). */
  schemaKey(change: SinkSchemaChange): string {
    const name = change.kind === 'version' ? change.schema.fingerprint : `ddl-${change.order}`;
    return `${this.options.prefix}_schemas/${change.table}/${encodeURIComponent(name)}.json`;
  }

  private schemaObject(change: SinkSchemaChange, events: readonly ChangeEvent[]): string {
    if (change.kind === 'ddl') {
      const { table, type, ddl, columns, primaryKey, source } = change.change;
      return JSON.stringify({
        kind: 'ddl',
        table,
        type,
        ddl,
        columns,
        primaryKey,
        order: source.order,
        at: at(source),
      });
    }
    const event = events[change.index];
    return JSON.stringify({
      kind: 'schema',
      table: change.table,
      fingerprint: change.schema.fingerprint,
      ...(change.version === undefined ? {} : { version: change.version }),
      columns: change.schema.columns,
      firstOrder: change.order,
      at: event ? at(event.source) : null,
    });
  }

  async write(p: SinkPartition): Promise<SinkPartitionResult> {
    // A change the change log cannot hold (a commit time that is no date, a value its column's type cannot take) is
    // refused for good, so it is dead-lettered: encoding is pure, and a retry would fail the same way forever.
    const rejected: Rejected = [];
    const refuse = (index: number, why: string) =>
      rejected.push({ index, error: new SinkError('SINK_REJECTED', why, { retryable: false }) });
    const groups = new Map<string, FileGroup>();
    p.events.forEach((event, i) => {
      const table = tableIdOf(event.source);
      const time = event.source.commitTs ?? event.processedAt;
      const date = isoDateOf(time)?.slice(0, 10);
      if (date === undefined) {
        refuse(i, `the change log cannot hold ${event.id}: its commit time ${time} is not a date`);
        return;
      }
      const id = `${table}\u0000${date}`;
      let group = groups.get(id);
      if (!group) {
        group = { table, date, events: [], columns: [], indexes: [] };
        groups.set(id, group);
      }
      group.events.push(event);
      group.columns.push(p.columns[i]);
      group.indexes.push(i);
    });
    const files = [...groups.values()].flatMap((group) => {
      const file = encodeGroup(group, refuse);
      return file ? [file] : [];
    });
    try {
      const history = (p.schemaChanges ?? []).map((change) =>
        this.s3.send(
          new PutObjectCommand({
            Bucket: this.options.bucket,
            Key: this.schemaKey(change),
            Body: this.schemaObject(change, p.events),
            ContentType: 'application/json',
          }),
        ),
      );
      await Promise.all([
        ...history,
        ...files.map(({ group, body }) => {
          const first = group.events[0] as ChangeEvent;
          return this.s3.send(
            new PutObjectCommand({
              Bucket: this.options.bucket,
              Key: this.objectKey(group, first, p.redrive),
              Body: body,
              ContentType: 'application/vnd.apache.parquet',
            }),
          );
        }),
      ]);
    } catch (error) {
      return { ok: false, error: sinkErrorFrom(error, `writing the change log of ${p.partition.id}`) };
    }
    return rejected.length > 0
      ? { ok: true, writtenAt: this.clock(), rejected }
      : { ok: true, writtenAt: this.clock() };
  }
}

/** The ISO time of an epoch-ms instant, or undefined when it is none (not finite, or past a Date's range). */
function isoDateOf(ms: number): string | undefined {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/**
 * A group's Parquet file. Should the file not build, each change is tried alone: those that cannot be encoded are
 * refused and the file is built from the others (undefined when none is left).
 */
function encodeGroup(
  group: FileGroup,
  refuse: (index: number, why: string) => void,
): { group: FileGroup; body: Uint8Array } | undefined {
  try {
    return { group, body: changeLogParquet(group.events, group.columns) };
  } catch {
    // one change or more cannot be encoded: find them below
  }
  const kept: FileGroup = { ...group, events: [], columns: [], indexes: [] };
  group.events.forEach((event, j) => {
    try {
      changeLogParquet([event], [group.columns[j]]);
      kept.events.push(event);
      kept.columns.push(group.columns[j]);
      kept.indexes.push(group.indexes[j] as number);
    } catch (error) {
      refuse(group.indexes[j] as number, `the change log cannot hold ${event.id}: ${(error as Error).message}`);
    }
  });
  if (kept.events.length === 0) return undefined;
  try {
    return { group: kept, body: changeLogParquet(kept.events, kept.columns) };
  } catch (error) {
    // Each encodes alone but not together (the columns' types widened): none of them can be written.
    for (const [j, event] of kept.events.entries()) {
      refuse(kept.indexes[j] as number, `the change log cannot hold ${event.id}: ${(error as Error).message}`);
    }
    return undefined;
  }
}

/** When the source committed the change (ISO), for the schema history; null when the connector did not say. */
function at(source: ChangeEvent['source']): string | null {
  return source.commitTs === null ? null : (isoDateOf(source.commitTs) ?? null);
}
