import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { pad, tableIdOf } from '../core/change';
import { digestId } from '../core/dedupe';
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
}

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
    const groups = new Map<string, FileGroup>();
    p.events.forEach((event, i) => {
      const table = tableIdOf(event.source);
      const date = new Date(event.source.commitTs ?? event.processedAt).toISOString().slice(0, 10);
      const id = `${table}\u0000${date}`;
      let group = groups.get(id);
      if (!group) {
        group = { table, date, events: [], columns: [] };
        groups.set(id, group);
      }
      group.events.push(event);
      group.columns.push(p.columns[i]);
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
        ...[...groups.values()].map((group) => {
          const first = group.events[0] as ChangeEvent;
          return this.s3.send(
            new PutObjectCommand({
              Bucket: this.options.bucket,
              Key: this.objectKey(group, first, p.redrive),
              Body: changeLogParquet(group.events, group.columns),
              ContentType: 'application/vnd.apache.parquet',
            }),
          );
        }),
      ]);
    } catch (error) {
      return { ok: false, error: sinkErrorFrom(error, `writing the change log of ${p.partition.id}`) };
    }
    return { ok: true, writtenAt: this.clock() };
  }
}

/** When the source committed the change (ISO), for the schema history; null when the connector did not say. */
function at(source: ChangeEvent['source']): string | null {
  return source.commitTs === null ? null : new Date(source.commitTs).toISOString();
}
