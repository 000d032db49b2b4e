import { createHash } from 'node:crypto';
import type { ChangeEvent, SchemaChangeRecord, SchemaColumn, SinkSchemaChange } from '../core/types';

/**
 * The audit log's hash chain. Each topic-partition has its own chain (one writer at a time, in offset order); each
 * entry carries its sequence number, the hash of the previous entry and its own hash:
 *   hash = sha256(prev + "\n" + JSON.stringify(event))            a change
 *   hash = sha256(prev + "\nschema\n" + JSON.stringify(schema))   a schema history entry
 * so changing, removing or reordering an entry, or losing an object, breaks the chain where it happened. The
 * schema entries' hashes are domain-separated so that no change can be passed off as a schema entry or back.
 */
export const GENESIS = '0'.repeat(64);

/** A schema history entry: the table's rows carry a new schema version from here on, or the connector reported DDL. */
export type AuditSchemaEntry =
  | { kind: 'schema'; table: string; fingerprint: string; version?: number; columns: SchemaColumn[]; order: string }
  | {
      kind: 'ddl';
      table: string;
      type: string;
      ddl: string | null;
      columns: SchemaChangeRecord['columns'];
      primaryKey: string[];
      order: string;
      position: Record<string, string>;
    };

/** One line of the audit log: a change (`event`) or a schema history entry (`schema`). */
export type AuditEntry = { seq: number; prev: string; hash: string } & (
  | { event: ChangeEvent; schema?: undefined }
  | { schema: AuditSchemaEntry; event?: undefined }
);

/** The head of one chain, kept in the lane's checkpoint (sink state). */
export interface ChainHead {
  /** When the chain started (ms); part of the object keys, so a chain restarted from scratch never overwrites. */
  epoch: number;
  /** Sequence number of the next entry. */
  seq: number;
  /** Hash of the last entry (GENESIS before the first). */
  hash: string;
}

export function entryHash(prev: string, eventJson: string): string {
  return createHash('sha256').update(prev).update('\n').update(eventJson).digest('hex');
}

/** The hash of a schema history entry (domain-separated from changes). */
export function schemaEntryHash(prev: string, schemaJson: string): string {
  return createHash('sha256').update(prev).update('\nschema\n').update(schemaJson).digest('hex');
}

/** The audit form of a partition's schema history entry. */
export function auditSchemaEntry(change: SinkSchemaChange): AuditSchemaEntry {
  if (change.kind === 'version') {
    const { table, schema, version, order } = change;
    return version === undefined
      ? { kind: 'schema', table, fingerprint: schema.fingerprint, columns: schema.columns, order }
      : { kind: 'schema', table, fingerprint: schema.fingerprint, version, columns: schema.columns, order };
  }
  const { table, type, ddl, columns, primaryKey, source } = change.change;
  return { kind: 'ddl', table, type, ddl, columns, primaryKey, order: source.order, position: source.position };
}

/**
 * Appends events to a chain, each schema history entry before the event it precedes (`index`): returns the NDJSON
 * lines and the new head.
 */
export function chainEntries(
  head: ChainHead,
  events: readonly ChangeEvent[],
  schemaChanges: readonly SinkSchemaChange[] = [],
): { lines: string[]; head: ChainHead } {
  const lines: string[] = [];
  let { seq, hash } = head;
  let s = 0;
  const schemasUpTo = (index: number) => {
    for (; s < schemaChanges.length && (schemaChanges[s] as SinkSchemaChange).index <= index; s++) {
      const schemaJson = JSON.stringify(auditSchemaEntry(schemaChanges[s] as SinkSchemaChange));
      const next = schemaEntryHash(hash, schemaJson);
      lines.push(`{"seq":${seq},"prev":"${hash}","hash":"${next}","schema":${schemaJson}}`);
      hash = next;
      seq++;
    }
  };
  events.forEach((event, i) => {
    schemasUpTo(i);
    const eventJson = JSON.stringify(event);
    const next = entryHash(hash, eventJson);
    lines.push(`{"seq":${seq},"prev":"${hash}","hash":"${next}","event":${eventJson}}`);
    hash = next;
    seq++;
  });
  schemasUpTo(Number.POSITIVE_INFINITY);
  return { lines, head: { epoch: head.epoch, seq, hash } };
}

export type ChainProblem =
  | { kind: 'unparsable'; object: string; line: number; message: string }
  | { kind: 'gap'; object: string; line: number; expectedSeq: number; seq: number }
  | { kind: 'prev-mismatch'; object: string; line: number; seq: number; expected: string; found: string }
  | { kind: 'hash-mismatch'; object: string; line: number; seq: number };

export interface ChainCheck {
  /** Every entry, changes and schema history. */
  entries: number;
  /** Of which schema history entries. */
  schemaEntries: number;
  lastHash: string;
  problems: ChainProblem[];
}

/**
 * Verifies one chain given its objects' NDJSON text in key order. Stops at the first problem of each object's
 * continuation but reports every problem it finds, with the object and line where the chain breaks.
 */
export function verifyChain(
  objects: ReadonlyArray<{ key: string; text: string }>,
): ChainCheck & { events: ChangeEvent[]; schemas: AuditSchemaEntry[] } {
  const problems: ChainProblem[] = [];
  const events: ChangeEvent[] = [];
  const schemas: AuditSchemaEntry[] = [];
  let entries = 0;
  let expectedSeq = 0;
  let expectedPrev = GENESIS;
  for (const { key, text } of objects) {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line === '') continue;
      let entry: AuditEntry;
      try {
        entry = JSON.parse(line) as AuditEntry;
      } catch (error) {
        problems.push({ kind: 'unparsable', object: key, line: i + 1, message: (error as Error).message });
        continue;
      }
      if (entry.seq !== expectedSeq)
        problems.push({ kind: 'gap', object: key, line: i + 1, expectedSeq, seq: entry.seq });
      if (entry.prev !== expectedPrev) {
        problems.push({
          kind: 'prev-mismatch',
          object: key,
          line: i + 1,
          seq: entry.seq,
          expected: expectedPrev,
          found: entry.prev,
        });
      }
      const hash =
        entry.schema !== undefined
          ? schemaEntryHash(entry.prev, JSON.stringify(entry.schema))
          : entryHash(entry.prev, JSON.stringify(entry.event));
      if (hash !== entry.hash) problems.push({ kind: 'hash-mismatch', object: key, line: i + 1, seq: entry.seq });
      // A schema entry is history, not a change: it never counts as one.
      if (entry.schema !== undefined) schemas.push(entry.schema);
      else events.push(entry.event);
      entries++;
      expectedSeq = entry.seq + 1;
      expectedPrev = entry.hash;
    }
  }
  return { entries, schemaEntries: schemas.length, lastHash: expectedPrev, problems, events, schemas };
}
