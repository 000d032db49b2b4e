/**
 * Contract test of the sample events: every file under events/ is decoded record by record and compared with its
 * reviewed expected output in events/expected/<same path>.jsonl (the lines `npm run decode` prints).
 *
 * To (re)write the expected files after a deliberate decoder change: `UPDATE_EXPECTED=1 npx vitest run test/contract`,
 * then review the diff line by line against Debezium's documented output (events/README.md says what each file is
 * for). The expected files are the contract; the decoder is not trusted to produce them.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isSafeNumber, parse } from 'lossless-json';
import { describe, expect, it } from 'vitest';
import { tableIdOf } from '../../functions/core/change';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { compareOrder } from '../../functions/core/dedupe';
import type {
  ChangeEvent,
  DecodeOutcome,
  KafkaEvent,
  KafkaRecord,
  SchemaChangeRecord,
} from '../../functions/core/types';
import { readEventFile } from '../../tools/lib/event-files';

const EVENTS_DIR = fileURLToPath(new URL('../../events/', import.meta.url));
const EXPECTED_DIR = join(EVENTS_DIR, 'expected');
/** A fixed processing time, so expected files are stable. */
const PROCESSED_AT = 1_710_500_000_000;
const UPDATE = process.env.UPDATE_EXPECTED === '1';

interface KafkaCoordinates {
  topic: string;
  partition: number;
  offset: number;
}
type SkipLine = { skipped: string; kafka: KafkaCoordinates };
type SchemaChangeLine = { schemaChange: SchemaChangeRecord[]; kafka: KafkaCoordinates };
type ErrorLine = { error: { code: string; message: string }; kafka: KafkaCoordinates };
type Line = ChangeEvent | SchemaChangeLine | SkipLine | ErrorLine;

/** Every sample event file (recursively), as a path relative to events/; expected outputs are not samples. */
function sampleFiles(): string[] {
  return (
    readdirSync(EVENTS_DIR, { recursive: true, encoding: 'utf8' })
      .map((path) => path.split('\\').join('/'))
      // avro/ holds the Avro twins of these samples: test/contract/avro-events.test.ts decodes them against these files.
      .filter((path) => path.endsWith('.json') && !path.startsWith('expected/') && !path.startsWith('avro/'))
      .sort()
  );
}

/** The records of an event in the order the decode CLI prints them: by partition key, then offset. */
function recordsInOrder(event: KafkaEvent): KafkaRecord[] {
  return Object.keys(event.records)
    .sort()
    .flatMap((key) => [...(event.records[key] ?? [])].sort((a, b) => a.offset - b.offset));
}

/** The line `npm run decode` prints for one outcome (tools/decode.ts). */
function lineOf(record: KafkaRecord, outcome: DecodeOutcome): Line {
  const kafka = { topic: record.topic, partition: record.partition, offset: record.offset };
  switch (outcome.kind) {
    case 'event':
      return JSON.parse(JSON.stringify(outcome.event)) as ChangeEvent;
    case 'schema-change':
      return JSON.parse(JSON.stringify({ schemaChange: outcome.changes, kafka })) as SchemaChangeLine;
    case 'skip':
      return { skipped: outcome.reason, kafka };
    case 'error':
      return { error: { code: outcome.error.code, message: outcome.error.message }, kafka };
  }
}

interface Decoded {
  records: KafkaRecord[];
  outcomes: DecodeOutcome[];
  lines: Line[];
}

async function decodeFile(relativePath: string): Promise<Decoded> {
  const event = await readEventFile(join(EVENTS_DIR, relativePath));
  const decoder = new JsonDebeziumDecoder();
  const records = recordsInOrder(event);
  const outcomes = records.map((record) => decoder.decode(record, PROCESSED_AT));
  return { records, outcomes, lines: records.map((record, i) => lineOf(record, outcomes[i] as DecodeOutcome)) };
}

function expectedPathOf(relativePath: string): string {
  return join(EXPECTED_DIR, `${relativePath}.jsonl`);
}

function readExpected(relativePath: string): Line[] {
  const text = readFileSync(expectedPathOf(relativePath), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Line);
}

/** Errors are compared by code only: messages are for people and may be reworded. */
function comparable(line: Line): unknown {
  return 'error' in line ? { error: { code: line.error.code }, kafka: line.kafka } : line;
}

function isEvent(line: Line): line is ChangeEvent {
  return 'id' in line && 'op' in line;
}

function eventOf(outcome: DecodeOutcome | undefined): ChangeEvent {
  if (outcome?.kind !== 'event') throw new Error(`expected an event, got ${JSON.stringify(outcome)}`);
  return outcome.event;
}

async function eventsOf(relativePath: string): Promise<ChangeEvent[]> {
  const { outcomes } = await decodeFile(relativePath);
  return outcomes.map(eventOf);
}

/**
 * The payload Debezium wrote for a record, to show a sample's input next to the decoded output. Parsed independently
 * of the decoder; integers beyond 2^53 stay digit strings.
 */
function rawValue(record: KafkaRecord): Record<string, unknown> {
  const text = Buffer.from(record.value ?? '', 'base64').toString('utf8');
  const document = parse(text, null, (digits) => (isSafeNumber(digits) ? Number(digits) : digits)) as Record<
    string,
    unknown
  >;
  return (document.payload ?? document) as Record<string, unknown>;
}

const FILES = sampleFiles();

describe('events/ sample files', () => {
  it('include every case the contract test relies on', () => {
    // Arrange
    const folders = new Set(FILES.map((path) => path.split('/')[0]));
    // Act + Assert
    expect([...folders].sort()).toEqual(['dead-letter', 'malformed', 'msk', 'mysql', 'postgres', 'sqlserver']);
    expect(FILES.length).toBeGreaterThanOrEqual(60);
  });

  it('have no expected file without its sample', () => {
    // Arrange
    const expected = readdirSync(EXPECTED_DIR, { recursive: true, encoding: 'utf8' })
      .map((path) => path.split('\\').join('/'))
      .filter((path) => path.endsWith('.jsonl'));
    // Act
    const orphans = expected.filter((path) => !FILES.includes(path.slice(0, -'.jsonl'.length)));
    // Assert
    expect(orphans).toEqual([]);
  });

  it.each(FILES)('%s decodes to its expected output', async (relativePath) => {
    // Arrange
    const expectedPath = expectedPathOf(relativePath);
    // Act
    const { lines } = await decodeFile(relativePath);
    if (UPDATE) {
      mkdirSync(dirname(expectedPath), { recursive: true });
      writeFileSync(expectedPath, lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
    }
    // Assert
    expect(existsSync(expectedPath), `missing ${relative(process.cwd(), expectedPath)}`).toBe(true);
    expect(lines.map(comparable)).toEqual(readExpected(relativePath).map(comparable));
  });

  it.each(FILES)('%s: changes of one row key are in source order', async (relativePath) => {
    // Arrange
    const expected = readExpected(relativePath).filter(isEvent);
    const lastOrder = new Map<string, string>();
    const outOfOrder: string[] = [];
    // Act
    for (const event of expected) {
      if (event.key === null) continue;
      const row = `${event.kafka.topic}/${JSON.stringify(event.key)}`;
      const previous = lastOrder.get(row);
      if (previous !== undefined && event.source.order < previous) outOfOrder.push(`${row} @${event.kafka.offset}`);
      lastOrder.set(row, event.source.order);
    }
    // Assert
    expect(outOfOrder).toEqual([]);
  });
});

describe('logical types decoded from the samples', () => {
  // Per sample file, columns of its first record: [column, what Debezium sent, canonical value].
  const columns: Record<string, Array<[string, unknown, unknown]>> = {
    'postgres/types.json': [
      ['price', 'Jw8=', '99.99'],
      ['small_price', 'AIA=', '1.28'],
      ['refund', 'nA==', '-1.00'],
      ['zero', 'AA==', '0.00'],
      ['big', 'AY7pD/bDc+DuTj8K0g==', '123456789012345678901234.567890'],
      ['big_negative', '+qVassca2YEW', '-98765432109876.543210'],
      ['ratio', { scale: 3, value: 'DEY=' }, '3.142'],
      ['ship_date', 19797, '2024-03-15'],
      ['ts_millis', 1710498600123, '2024-03-15T10:30:00.123'],
      ['ts_micros', 1710498600123456, '2024-03-15T10:30:00.123456'],
      ['tstz_trimmed', '2024-03-15T10:30:00.123Z', '2024-03-15T10:30:00.123Z'],
      ['tstz_whole_second', '2024-03-15T10:30:00Z', '2024-03-15T10:30:00Z'],
      ['tstz_padded', '2024-03-15T10:30:00.123000Z', '2024-03-15T10:30:00.123Z'],
      ['t_micros', 37800123456, '10:30:00.123456'],
      ['t_millis', 37800123, '10:30:00.123'],
      ['guid', 'f0e1d2c3-b4a5-4697-8877-665544332211', 'f0e1d2c3-b4a5-4697-8877-665544332211'],
      ['mood', 'happy', 'happy'],
      ['blob', '3q2+7w==', '3q2+7w=='],
      ['big_counter', '9007199254740993', '9007199254740993'],
    ],
    'postgres/timestamp-infinity.json': [
      ['valid_until', '9223372036825200000', 'infinity'],
      ['valid_from', '-9223372036832400000', '-infinity'],
      ['expires_at', 'infinity', 'infinity'],
    ],
    'postgres/decimal-numeric-format.json': [['total', '12345678901234567.89', '12345678901234567.89']],
    'mysql/types.json': [
      ['placed_at', 1710498600123, '2024-03-15T10:30:00.123'],
      ['packed_at', 1710498600123456, '2024-03-15T10:30:00.123456'],
      ['updated_at', '2024-03-15T10:30:00Z', '2024-03-15T10:30:00Z'],
      ['ship_date', 19797, '2024-03-15'],
      ['total', 'Jw8=', '99.99'],
      ['is_gift', 1, 1],
      ['status', 'paid', 'paid'],
    ],
    'sqlserver/create.json': [
      ['placed_at', '1710498600123456700', '2024-03-15T10:30:00.123456700'],
      ['placed_at_offset', '2024-03-15T12:30:00.1234567+02:00', '2024-03-15T10:30:00.1234567Z'],
      ['total', 'ALxhTg==', '1234.5678'],
      ['is_gift', true, true],
    ],
  };
  it.each(
    Object.entries(columns).flatMap(([file, rows]) =>
      rows.map(([column, raw, expected]): [string, string, unknown, unknown] => [file, column, raw, expected]),
    ),
  )('%s %s: %j → %j', async (file, column, raw, expected) => {
    // Arrange
    const { records, outcomes } = await decodeFile(file);
    const record = records[0] as KafkaRecord;
    const sent = (rawValue(record).after as Record<string, unknown>)[column];
    // Act
    const after = eventOf(outcomes[0]).after ?? {};
    // Assert
    expect(typeof sent === 'number' && typeof raw === 'string' ? String(sent) : sent).toEqual(raw);
    expect(after[column]).toEqual(expected);
  });

  it('keeps a JSON column parsed, its big integers exact as strings', async () => {
    // Arrange + Act
    const [event] = await eventsOf('postgres/types.json');
    // Assert
    expect(event?.after?.doc).toEqual({
      big: '12345678901234567890',
      qty: 3,
      sku: 'A-1',
      nested: { ok: true, ids: [1, '9007199254740993'] },
    });
  });

  it('keeps every digit of a 20-digit LSN and of ts_ns', async () => {
    // Arrange + Act
    const [event] = await eventsOf('postgres/lsn-beyond-2-53.json');
    // Assert
    expect(event?.source.position).toEqual({ lsn: '12345678901234567890', lastCommitLsn: '12345678901234567000' });
    expect(event?.source.order).toBe('pg:1:12345678901234567000:12345678901234567890');
    expect(event?.source.commitTsNs).toBe('1710498600123457000');
    expect(event?.id).toBe('pg.public.orders/lsn=12345678901234567890/{"id":1001}');
  });

  it.each([
    ['postgres/types.json', 'score', 'double'],
    ['postgres/types.json', 'ratio_f', 'double'],
    ['postgres/types.json', 'price', 'decimal'],
    ['postgres/types.json', 'ts_micros', 'timestamp'],
    ['postgres/types.json', 'tstz_padded', 'timestamptz'],
    ['postgres/types.json', 'doc', 'json'],
    ['postgres/types.json', 'big_counter', 'int64'],
    ['postgres/types.json', 'active', 'boolean'],
  ])('%s column %s has the Parquet column type %s', async (file, column, type) => {
    // Arrange
    const { outcomes } = await decodeFile(file);
    // Act
    const outcome = outcomes[0];
    // Assert
    expect(outcome?.kind === 'event' ? outcome.columns?.get(column) : undefined).toBe(type);
  });
});

describe('ids and positions', () => {
  it('gives a change re-emitted at another offset after a restart the same id', async () => {
    // Arrange + Act
    const [first, again] = await eventsOf('postgres/redelivered-after-restart.json');
    // Assert
    expect(first?.kafka.offset).not.toBe(again?.kafka.offset);
    expect(again?.id).toBe(first?.id);
    expect(again?.source.order).toBe(first?.source.order);
  });

  it('gives an unwrapped row with add.fields=lsn re-emitted at another offset the same id', async () => {
    // Arrange
    const { records } = await decodeFile('postgres/unwrap/add-fields.schemaless.json');
    const original = records[0] as KafkaRecord;
    const decoder = new JsonDebeziumDecoder();
    // Act
    const first = eventOf(decoder.decode(original, PROCESSED_AT));
    const again = eventOf(decoder.decode({ ...original, offset: original.offset + 500 }, PROCESSED_AT));
    // Assert
    expect(again.id).toBe(first.id);
  });

  it.each([
    ['postgres/snapshot.json'],
    ['mysql/snapshot.json'],
    ['sqlserver/snapshot.json'],
    ['postgres/primary-key-change.json'],
    ['mysql/primary-key-change.json'],
    ['sqlserver/primary-key-change.json'],
    ['mysql/create.json'],
  ])('%s: changes sharing one source position still get distinct ids (the row key)', async (file) => {
    // Arrange
    const { lines } = await decodeFile(file);
    // Act
    const ids = lines.filter(isEvent).map((event) => event.id);
    // Assert
    expect(ids.length).toBeGreaterThan(1);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it.each([
    [
      'postgres/create.json',
      { lsn: '33816536', lastCommitLsn: '33816400' },
      'pg.public.orders/lsn=33816536/{"id":1001}',
    ],
    [
      'mysql/update.json',
      { file: 'mysql-bin.000003', pos: '4015', row: '0', gtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:24' },
      'mysql.inventory.orders/file=mysql-bin.000003,pos=4015,row=0/{"id":1001}',
    ],
    [
      'sqlserver/update.json',
      { commitLsn: '00000027:00000ac0:0003', changeLsn: '00000027:00000ac0:0002', eventSerialNo: '2' },
      'fulfillment.testDB.dbo.orders/commit=00000027:00000ac0:0003,change=00000027:00000ac0:0002,serial=2/{"id":1001}',
    ],
  ])('%s has position %j and id %s', async (file, position, id) => {
    // Arrange + Act
    const [event] = await eventsOf(file);
    // Assert
    expect(event?.source.position).toEqual(position);
    expect(event?.id).toBe(id);
  });

  it.each([
    ['postgres/snapshot.json', ['first', 'true', 'last']],
    ['postgres/snapshot-legacy.json', ['true', 'last', 'incremental', 'false', 'true']],
    ['mysql/snapshot.json', ['first', 'true', 'last']],
    ['sqlserver/snapshot.json', ['first', 'true', 'last']],
  ])('%s normalises source.snapshot to the string enum %j', async (file, snapshots) => {
    // Arrange + Act
    const events = await eventsOf(file);
    // Assert
    expect(events.map((event) => event.source.snapshot)).toEqual(snapshots);
  });

  it.each([
    ['postgres/create.json', 1710498600123, 1710498600456, '1710498600123457000'],
    ['mysql/create.json', 1710498600000, 1710498600412, '1710498600000000000'],
    ['sqlserver/create.json', 1710498600127, 1710498600530, '1710498600127000000'],
  ])(
    '%s: commitTs is source.ts_ms, capturedAt the envelope ts_ms, commitTsNs all 19 digits',
    async (file, commitTs, capturedAt, ns) => {
      // Arrange + Act
      const [event] = await eventsOf(file);
      // Assert
      expect(event?.source.commitTs).toBe(commitTs);
      expect(event?.capturedAt).toBe(capturedAt);
      expect(event?.source.commitTsNs).toBe(ns);
    },
  );
});

describe('TOAST placeholders', () => {
  it('takes unchanged toasted columns out of the row and lists them as unchanged', async () => {
    // Arrange + Act
    const [titleOnly, bodyToo] = await eventsOf('postgres/toast-update.json');
    // Assert
    expect(titleOnly?.after).toEqual({ id: 7, title: 'v2' });
    expect(titleOnly?.unchanged).toEqual(['body', 'tags', 'blob', 'attrs', 'meta']);
    expect(bodyToo?.after).toMatchObject({ id: 7, title: 'v2', meta: { pages: 3 } });
    expect(bodyToo?.unchanged).toEqual(['tags', 'blob', 'attrs']);
  });

  it('never writes a placeholder through a delete before image', async () => {
    // Arrange
    const { outcomes } = await decodeFile('postgres/toast-delete.json');
    // Act
    const deleted = eventOf(outcomes[0]);
    // Assert
    expect(deleted?.before).toEqual({ id: 7, title: 'v2' });
    expect(JSON.stringify(deleted)).not.toContain('__debezium_unavailable_value');
  });
});

describe('records that are not row changes', () => {
  it.each([
    ['postgres/delete.json', ['event', 'tombstone']],
    ['postgres/control/heartbeat.json', ['heartbeat', 'heartbeat']],
    ['postgres/control/transaction.json', ['transaction', 'transaction']],
    ['postgres/control/transaction.schemaless.json', ['transaction', 'transaction']],
    ['postgres/control/logical-message.json', ['logical-message', 'logical-message']],
    ['mysql/schema-change.json', ['schema-change', 'schema-change']],
    ['sqlserver/schema-change.json', ['schema-change']],
    ['postgres/unwrap/row-with-status-end.json', ['event', 'event']],
    ['postgres/unwrap/row-with-op-column.json', ['event', 'event']],
  ])('%s decodes to %j', async (file, kinds) => {
    // Arrange + Act
    const { outcomes } = await decodeFile(file);
    // Assert
    expect(outcomes.map((outcome) => (outcome.kind === 'skip' ? outcome.reason : outcome.kind))).toEqual(kinds);
  });
});

describe('incremental snapshots', () => {
  it('decodes incremental reads as op r with snapshot "incremental" and a phase-1 order from their sequence', async () => {
    // Arrange
    const { records, outcomes } = await decodeFile('postgres/incremental-snapshot.json');
    // Act
    const reads = records.flatMap((record, i) => {
      const outcome = outcomes[i];
      return outcome?.kind === 'event' && outcome.event.source.snapshot === 'incremental'
        ? [{ raw: rawValue(record).source as Record<string, unknown>, event: outcome.event }]
        : [];
    });
    // Assert
    expect(reads.length).toBeGreaterThanOrEqual(2);
    for (const { raw, event } of reads) {
      const [lastCommitLsn, lsn] = JSON.parse(raw.sequence as string) as [string, string];
      expect(event.op).toBe('r');
      expect(event.before).toBeNull();
      expect(event.source.order).toBe(`pg:1:${lastCommitLsn.padStart(20, '0')}:${lsn.padStart(20, '0')}`);
    }
  });

  it('places every read after the streamed changes before it and before the streamed changes after it', async () => {
    // Arrange
    const events = await eventsOf('postgres/incremental-snapshot.json');
    // Act: each pair of events in stream (offset) order, as the dedupe compares them across rows
    const pairs = events.slice(1).map((event, i) => compareOrder(events[i]?.source.order ?? '', event.source.order));
    // Assert
    expect(pairs).toEqual(events.slice(1).map(() => -1));
  });

  it('lets an update written before the chunk was read but committed after its window win over the read', async () => {
    // Arrange: postgres/incremental-snapshot-race.json: the read of 1001 at its high watermark, then an update of
    // 1001 whose change LSN is lower than the watermark's (written earlier) and whose lastCommitLsn is higher.
    const [read, update] = await eventsOf('postgres/incremental-snapshot-race.json');
    // Act + Assert
    expect(Number(update?.source.position.lsn)).toBeLessThan(Number(read?.source.position.lsn));
    expect((update?.source.order ?? '') > (read?.source.order ?? '')).toBe(true);
    expect(compareOrder(update?.source.order ?? '', read?.source.order ?? '')).toBe(1);
  });
});

describe("Debezium's schema-change topic", () => {
  it.each([
    ['mysql/schema-change.json', 'mysql/create.json'],
    ['sqlserver/schema-change.json', 'sqlserver/create.json'],
  ])('%s names its table as the change events of %s do', async (file, dataFile) => {
    // Arrange
    const { outcomes } = await decodeFile(file);
    const [event] = await eventsOf(dataFile);
    // Act
    const tables = outcomes.flatMap((outcome) =>
      outcome.kind === 'schema-change' ? outcome.changes.map((change) => change.table) : [],
    );
    // Assert
    expect(tables.length).toBeGreaterThan(0);
    expect(new Set(tables)).toEqual(new Set([tableIdOf(event?.source as ChangeEvent['source'])]));
  });

  it('gives a DROP of two tables one schema change each, without columns, and a DDL naming no table none', async () => {
    // Arrange + Act
    const { outcomes } = await decodeFile('mysql/schema-change-drop.json');
    // Assert
    expect(
      outcomes.map((outcome) =>
        outcome.kind === 'schema-change'
          ? outcome.changes.map((c) => [c.type, c.table, c.columns.length])
          : outcome.kind,
      ),
    ).toEqual([
      [
        ['DROP', 'mysql.inventory.order_notes', 0],
        ['DROP', 'mysql.inventory.order_tags', 0],
      ],
      [],
    ]);
  });

  it('orders the schema changes of one topic by their position in the binlog', async () => {
    // Arrange
    const orders = [
      ...(await decodeFile('mysql/schema-change.json')).outcomes,
      ...(await decodeFile('mysql/schema-change-drop.json')).outcomes,
    ].flatMap((outcome) => (outcome.kind === 'schema-change' ? outcome.changes.map((c) => c.source.order) : []));
    // Act + Assert
    expect(orders).toEqual([...orders].sort());
    expect(new Set(orders).size).toBe(3);
  });
});

describe('table schema versions of the samples', () => {
  it.each([
    ['postgres/create.json', 'postgres/update.json'],
    ['mysql/create.json', 'mysql/update.json'],
    ['sqlserver/create.json', 'sqlserver/update.json'],
  ])('%s and %s (one table, one schema) carry the same version', async (a, b) => {
    // Arrange + Act
    const [first] = (await decodeFile(a)).outcomes;
    const [second] = (await decodeFile(b)).outcomes;
    // Assert
    expect(first?.kind === 'event' && first.schema?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(second?.kind === 'event' && second.schema?.fingerprint).toBe(
      first?.kind === 'event' && first.schema?.fingerprint,
    );
  });

  it.each([
    ['postgres/create.schemaless.json'],
    ['mysql/create.schemaless.json'],
    ['postgres/unwrap/add-fields.schemaless.json'],
  ])('%s (schemas.enable=false) carries no schema version', async (file) => {
    const { outcomes } = await decodeFile(file);
    expect(outcomes.filter((o) => o.kind === 'event').map((o) => o.kind === 'event' && o.schema)).not.toContain(
      expect.anything(),
    );
  });

  it('describes a table of postgres/types.json column by column, in the order Debezium sent them', async () => {
    // Arrange
    const { records, outcomes } = await decodeFile('postgres/types.json');
    // Act
    const columns = outcomes[0]?.kind === 'event' ? (outcomes[0].schema?.columns ?? []) : [];
    // Assert
    expect(columns.find((c) => c.name === 'price')).toMatchObject({
      type: 'bytes',
      logical: 'org.apache.kafka.connect.data.Decimal',
      parameters: { scale: '2' },
    });
    expect(columns.map((c) => c.name)).toEqual(Object.keys(rawValue(records[0] as KafkaRecord).after as object));
  });
});

describe('bad records', () => {
  it.each([
    ['malformed/bad-base64.json', 'BAD_BASE64'],
    ['malformed/invalid-utf8.json', 'INVALID_UTF8'],
    ['malformed/not-json.json', 'NOT_JSON'],
    ['malformed/json-array.json', 'NOT_AN_OBJECT'],
    ['malformed/json-number.json', 'NOT_AN_OBJECT'],
    ['malformed/unknown-op.json', 'UNKNOWN_OP'],
    ['malformed/missing-source.json', 'MISSING_SOURCE'],
    ['malformed/create-without-after.json', 'INVALID_ENVELOPE'],
    ['malformed/key-not-json.json', 'INVALID_KEY'],
    ['msk/schema-registry-framed.json', 'UNSUPPORTED_FORMAT'],
  ])('%s: the bad record fails with %s, its good neighbours still decode', async (file, code) => {
    // Arrange + Act
    const { outcomes } = await decodeFile(file);
    const errors = outcomes.flatMap((outcome) => (outcome.kind === 'error' ? [outcome.error.code] : []));
    const events = outcomes.filter((outcome) => outcome.kind === 'event');
    // Assert
    expect(new Set(errors)).toEqual(new Set([code]));
    expect(events.length).toBeGreaterThanOrEqual(2);
  });

  it('dead-letters a 2 MB value as RECORD_TOO_LARGE and decodes the records around it', async () => {
    // Arrange
    const event = await readEventFile(join(EVENTS_DIR, 'postgres/create.json'));
    const [good] = recordsInOrder(event);
    const huge = Buffer.from(JSON.stringify({ payload: 'x'.repeat(2 * 1024 * 1024) })).toString('base64');
    const records = [good, { ...good, offset: 41, value: huge }, { ...good, offset: 42 }] as KafkaRecord[];
    const decoder = new JsonDebeziumDecoder();
    // Act
    const kinds = records.map((record) => {
      const outcome = decoder.decode(record, PROCESSED_AT);
      return outcome.kind === 'error' ? outcome.error.code : outcome.kind;
    });
    // Assert
    expect(kinds).toEqual(['event', 'RECORD_TOO_LARGE', 'event']);
  });
});
