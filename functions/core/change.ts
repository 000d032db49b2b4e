import { createHash } from 'node:crypto';
import type { ChangeEvent, ChangeSource, Row } from './types';

/**
 * Helpers over canonical change events shared by the decoder, enrichment and the sinks.
 */

/** The table an event belongs to, named like Debezium names topics: `<prefix>.<schema|db>.<table>` (SQL Server
 *  `<prefix>.<db>.<schema>.<table>`). */
export function tableIdOf(source: ChangeSource): string {
  const parts = [source.name];
  if (source.connector === 'sqlserver' && source.db) parts.push(source.db);
  const container = source.schema ?? source.db;
  if (container) parts.push(container);
  if (source.table) parts.push(source.table);
  return parts.join('.');
}

/** The part of the position that identifies one change (PG: the change's own LSN; not the commit context). */
export function positionIdText(source: ChangeSource): string {
  const p = source.position;
  switch (source.connector) {
    case 'postgresql':
      return `lsn=${p.lsn}`;
    case 'mysql':
    case 'mariadb':
      return `file=${p.file},pos=${p.pos},row=${p.row}`;
    case 'sqlserver':
      return `commit=${p.commitLsn},change=${p.changeLsn ?? ''},serial=${p.eventSerialNo ?? ''}`;
    default:
      return `kafka=${p.topic}:${p.partition}:${p.offset}`;
  }
}

const MAX_ID_LENGTH = 512;

/**
 * The idempotency key: table + position + row key. Debezium re-emitting a change after a restart (new Kafka offset,
 * same source position) yields the same id; snapshot reads share one position, hence the row key.
 * A table without a key has no row key: there the row image (`row`: after, or before for deletes) stands in for it,
 * as a digest, because several changes of such a table share one position too: every snapshot read, and every row of
 * a multi-row INSERT on PostgreSQL (one heap_multi_insert WAL record, one LSN). Rows equal in every column at one
 * position stay indistinguishable, as they are to Debezium's own offsets.
 * Very long keys are hashed so the id stays a reasonable DynamoDB attribute.
 */
export function changeId(source: ChangeSource, key: Row | null, row?: Row | null): string {
  const keyText =
    key !== null
      ? JSON.stringify(key)
      : row
        ? `row-sha256:${createHash('sha256').update(JSON.stringify(row)).digest('hex')}`
        : 'null';
  const prefix = `${tableIdOf(source)}/${positionIdText(source)}/`;
  if (prefix.length + keyText.length <= MAX_ID_LENGTH) return prefix + keyText;
  return `${prefix}sha256:${createHash('sha256').update(keyText).digest('hex')}`;
}

/** Left-pads a non-negative integer (as digits) to a fixed width so strings sort numerically. */
export function pad(digits: string | number, width: number): string {
  return String(digits).padStart(width, '0');
}

/** The row image a sink stores for the event: `after`, or `before` for deletes. */
export function rowImageOf(event: ChangeEvent): Row | null {
  return event.op === 'd' ? event.before : event.after;
}
