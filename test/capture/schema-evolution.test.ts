import { describe, expect, it } from 'vitest';
import type { AddedTable, CapturedRecord } from '../../tools/local/capture';
import { captureSchema, changes, deferred, jsonAt, unique, usePostgres } from './helpers';

const { db, sql } = usePostgres();

async function newSchema(ddl: (schema: string) => string): Promise<string> {
  const schema = unique('evo');
  await sql().query(`CREATE SCHEMA ${schema}; ${ddl(schema)}`);
  return schema;
}

const ITEMS = (s: string) =>
  `CREATE TABLE ${s}.items (id integer PRIMARY KEY, name text NOT NULL, qty integer, price numeric(10,2));
   INSERT INTO ${s}.items VALUES (1, 'a', 1, 1.50);`;

/** The row struct fields of a record's value schema (`after`), as JSON texts. */
function fields(valueText: string): string[] {
  const count = (JSON.parse(valueText).schema.fields[1].fields as unknown[]).length;
  return Array.from({ length: count }, (_, i) => jsonAt(valueText, 'schema', 'fields', 1, 'fields', i));
}

describe('new tables', () => {
  it('a table created in a captured schema while streaming is captured from its first row', async () => {
    // Arrange
    const schema = await newSchema(ITEMS);
    const added: AddedTable[] = [];
    const run = await captureSchema(db(), sql(), schema, {
      onTableAdded: async (t) => {
        added.push(t);
      },
    });

    // Act
    await sql().query(`CREATE TABLE ${schema}.fresh (id bigint PRIMARY KEY, v text)`);
    await sql().query(`INSERT INTO ${schema}.fresh VALUES (1, 'first')`);
    await sql().query(`CREATE TABLE ${schema}.loose (v text); ALTER TABLE ${schema}.loose REPLICA IDENTITY FULL`);
    await sql().query(`INSERT INTO ${schema}.loose VALUES ('x')`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const fresh = changes(run.records, 'fresh');
    expect(fresh.map((e) => [e.topic, e.value.payload.op, e.value.payload.after])).toEqual([
      [`test.${schema}.fresh`, 'c', { id: 1, v: 'first' }],
    ]);
    expect(changes(run.records, 'loose').map((e) => e.key)).toEqual([null]);
    expect(added).toEqual([
      { schema, table: 'fresh', topic: `test.${schema}.fresh`, hasKey: true },
      { schema, table: 'loose', topic: `test.${schema}.loose`, hasKey: false },
    ]);
  });

  it('starts on a captured schema that has no table yet', async () => {
    // Arrange
    const schema = await newSchema(() => '');
    const run = await captureSchema(db(), sql(), schema);

    // Act
    await sql().query(`CREATE TABLE ${schema}.later (id integer PRIMARY KEY)`);
    await sql().query(`INSERT INTO ${schema}.later VALUES (7)`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    expect(changes(run.records).map((e) => e.key.payload)).toEqual([{ id: 7 }]);
  });

  it('a publication created FOR TABLE by an older run gains the schema, so new tables are streamed', async () => {
    // Arrange
    const schema = await newSchema(ITEMS);
    const publication = unique('pub');
    await sql().query(`CREATE PUBLICATION ${publication} FOR TABLE ${schema}.items`);
    const run = await captureSchema(db(), sql(), schema, { publicationName: publication });

    // Act
    await sql().query(`CREATE TABLE ${schema}.fresh (id integer PRIMARY KEY)`);
    await sql().query(`INSERT INTO ${schema}.fresh VALUES (1)`);
    await sql().query(`UPDATE ${schema}.items SET qty = 2`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    expect(changes(run.records, 'fresh')).toHaveLength(1);
    expect(changes(run.records, 'items').map((e) => e.value.payload.op)).toEqual(['r', 'u']);
  });
});

describe('dropped tables', () => {
  it('stop cleanly: the capture keeps running and other tables go on', async () => {
    // Arrange
    const schema = await newSchema(
      (s) => `${ITEMS(s)} CREATE TABLE ${s}.gone (id integer PRIMARY KEY); INSERT INTO ${s}.gone VALUES (1);`,
    );
    const run = await captureSchema(db(), sql(), schema);
    run.records.length = 0;

    // Act
    await sql().query(`DROP TABLE ${schema}.gone`);
    await sql().query(`INSERT INTO ${schema}.items VALUES (2, 'b', 1, 1)`);
    await run.capture.flushed();
    const phase = run.capture.status().phase;
    await run.stop();

    // Assert
    expect(phase).toBe('streaming');
    expect(changes(run.records).map((e) => e.topic)).toEqual([`test.${schema}.items`]);
  });

  it("whose changes are decoded after the drop still arrive with the stream's column list", async () => {
    // Arrange: one record per produce() call, and produce held, so the relation of `brief` is looked up after the
    // table was dropped.
    const schema = await newSchema(ITEMS);
    let hold: Promise<void> = Promise.resolve();
    const out: CapturedRecord[] = [];
    const run = await captureSchema(db(), sql(), schema, {
      maxBatchSize: 1,
      produce: async (records) => {
        await hold;
        out.push(...records);
      },
    });
    const held = deferred();
    hold = held.promise;

    // Act
    await sql().query(`UPDATE ${schema}.items SET qty = 5`);
    await sql().query(`CREATE TABLE ${schema}.brief (id integer PRIMARY KEY, v text NOT NULL)`);
    await sql().query(`INSERT INTO ${schema}.brief VALUES (1, 'x')`);
    await sql().query(`DROP TABLE ${schema}.brief`);
    await sql().query(`UPDATE ${schema}.items SET qty = 6`);
    await new Promise((r) => setTimeout(r, 300));
    held.resolve();
    await run.capture.flushed();
    await run.stop();

    // Assert
    const brief = changes(out, 'brief');
    expect(brief.map((e) => e.value.payload.after)).toEqual([{ id: 1, v: 'x' }]);
    expect(brief[0]?.key.payload).toEqual({ id: 1 });
    expect(changes(out, 'items').map((e) => e.value.payload.after?.qty)).toEqual([1, 5, 6]);
  });
});

describe('DDL is reflected in the next record', () => {
  it.each([
    [
      'ADD COLUMN with DEFAULT and NOT NULL',
      (s: string) => `ALTER TABLE ${s}.items ADD COLUMN status text NOT NULL DEFAULT 'x'`,
      4,
      '{"type":"string","optional":false,"default":"x","field":"status"}',
    ],
    ['DROP COLUMN', (s: string) => `ALTER TABLE ${s}.items DROP COLUMN qty`, 2, null],
    [
      'RENAME COLUMN',
      (s: string) => `ALTER TABLE ${s}.items RENAME COLUMN qty TO quantity`,
      2,
      '{"type":"int32","optional":true,"field":"quantity"}',
    ],
    [
      'ALTER COLUMN TYPE int to bigint',
      (s: string) => `ALTER TABLE ${s}.items ALTER COLUMN qty TYPE bigint`,
      2,
      '{"type":"int64","optional":true,"field":"qty"}',
    ],
    [
      'ALTER COLUMN TYPE numeric(10,2) to numeric(12,4)',
      (s: string) => `ALTER TABLE ${s}.items ALTER COLUMN price TYPE numeric(12,4)`,
      3,
      '{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"4","connect.decimal.precision":"12"},"field":"price"}',
    ],
    [
      'ALTER COLUMN SET DEFAULT (the catalog at that moment)',
      (s: string) => `ALTER TABLE ${s}.items ALTER COLUMN qty SET DEFAULT 9`,
      2,
      '{"type":"int32","optional":true,"default":9,"field":"qty"}',
    ],
  ])('%s', async (_name, ddl, index, expected) => {
    // Arrange
    const schema = await newSchema(ITEMS);
    const run = await captureSchema(db(), sql(), schema);
    await sql().query(`UPDATE ${schema}.items SET name = 'before' WHERE id = 1`);
    await run.capture.flushed();

    // Act
    await sql().query(ddl(schema));
    await sql().query(`UPDATE ${schema}.items SET name = 'after' WHERE id = 1`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const [, before, after] = changes(run.records);
    expect(before?.value.payload.after.name).toBe('before');
    expect(after?.value.payload.after.name).toBe('after');
    const beforeFields = fields(before?.valueText ?? '');
    const afterFields = fields(after?.valueText ?? '');
    expect(afterFields).not.toEqual(beforeFields);
    if (expected === null) {
      expect(afterFields.map((f) => JSON.parse(f).field)).toEqual(['id', 'name', 'price']);
      expect(Object.keys(after?.value.payload.after)).toEqual(['id', 'name', 'price']);
    } else {
      expect(afterFields[index]).toBe(expected);
    }
  });
});
