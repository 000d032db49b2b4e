/**
 * The current-state MERGE (functions/current-state/merge-sql.ts) on DuckDB, over real change-log Parquet files
 * (changeLogParquet of decoded Debezium records): every operation, order inside and across ranges, replays,
 * truncates, TOAST-unchanged columns, deletes and re-inserts, the processing-time range; and the Athena SQL of a
 * demo table against its snapshot.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { changeLogParquet } from '../../functions/adapters/change-log-parquet';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, ColumnTypes, Row } from '../../functions/core/types';
import {
  type ChangeRange,
  type CurrentStateTable,
  createDeletedTableStatement,
  createTableStatement,
  evolveTable,
  mergeStatements,
} from '../../functions/current-state/merge-sql';
import { pgMessage, recordOf } from '../support/builders';
import { throwawayDir } from '../support/scratch';

const TABLE = 'pg.public.items';
const TOAST = '__debezium_unavailable_value';
const TYPES: ColumnTypes = new Map([
  ['id', 'int64'],
  ['name', 'string'],
  ['qty', 'int64'],
  ['note', 'string'],
]);
const SHAPE: CurrentStateTable = {
  table: TABLE,
  keyColumns: ['id'],
  columns: [
    { name: 'id', type: 'int64' },
    { name: 'name', type: 'string' },
    { name: 'qty', type: 'int64' },
    { name: 'note', type: 'string' },
  ],
};
const decoder = new JsonDebeziumDecoder();

/** A decoded change of `items` at `lsn` (processed at `processedAt`): the row for c/u/r, the key for d. */
function change(op: 'r' | 'c' | 'u' | 'd' | 't', lsn: number, row: Row = {}, processedAt = 1_000): ChangeEvent {
  const spec =
    op === 'd' ? { op, table: 'items', before: row, lsn } : { op, table: 'items', after: op === 't' ? null : row, lsn };
  const outcome = decoder.decode(recordOf(pgMessage(spec)), processedAt);
  if (outcome.kind !== 'event') throw new Error(`not an event: ${outcome.kind}`);
  return outcome.event;
}

const root = throwawayDir('current-state-merge-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An in-memory DuckDB with the items' current-state table, and change-log files written per range. */
class Harness {
  private files = 0;
  private constructor(
    readonly connection: DuckDBConnection,
    private readonly instance: DuckDBInstance,
    private readonly dir: string,
  ) {}

  static async create(shape: CurrentStateTable = SHAPE): Promise<Harness> {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run(createTableStatement(shape, { relation: 'items' }, 'duckdb'));
    await connection.run(createDeletedTableStatement({ relation: 'items_deleted' }, 'duckdb'));
    const dir = join(root, `h${Math.random().toString(36).slice(2)}`);
    mkdirSync(dir, { recursive: true });
    return new Harness(connection, instance, dir);
  }

  /**
   * Writes the changes as one change-log file (in the order given) and returns its relation, with NULL for the
   * table's columns no change in it has (as a reader of the whole log, or the Glue table, sees them).
   */
  write(events: readonly ChangeEvent[], shape: CurrentStateTable = SHAPE): string {
    const file = join(this.dir, `${String(this.files++).padStart(4, '0')}.parquet`);
    writeFileSync(
      file,
      changeLogParquet(
        events,
        events.map(() => TYPES),
      ),
    );
    const present = new Set(events.flatMap((e) => [...Object.keys(e.after ?? e.before ?? {}), ...e.unchanged]));
    const missing = shape.columns.filter((c) => !present.has(c.name)).map((c) => `, NULL AS "${c.name}"`);
    return `(SELECT *${missing.join('')} FROM read_parquet('${file}', union_by_name = true, hive_partitioning = false))`;
  }

  statements(changesRelation: string, range: ChangeRange = {}, shape: CurrentStateTable = SHAPE): string[] {
    return mergeStatements(
      shape,
      { changesRelation, targetRelation: 'items', deletedRelation: 'items_deleted' },
      range,
      'duckdb',
    );
  }

  /** Applies one range of changes. */
  async apply(events: readonly ChangeEvent[], range: ChangeRange = {}): Promise<void> {
    await this.run(this.statements(this.write(events), range));
  }

  async run(statements: readonly string[]): Promise<void> {
    for (const statement of statements) await this.connection.run(statement);
  }

  /** The current rows by id: name, qty, note. */
  async rows(): Promise<Record<string, { name: unknown; qty: unknown; note: unknown }>> {
    const rows = await this.query('SELECT id, name, qty, note FROM items ORDER BY id');
    return Object.fromEntries(rows.map((r) => [String(r.id), { name: r.name, qty: r.qty, note: r.note }]));
  }

  /** Everything both tables hold, metadata included. */
  async dump(): Promise<unknown> {
    return {
      rows: await this.query('SELECT * FROM items ORDER BY _cdc_key'),
      deleted: await this.query('SELECT * FROM items_deleted ORDER BY _cdc_key'),
    };
  }

  async query(sql: string): Promise<Array<Record<string, unknown>>> {
    return (await this.connection.runAndReadAll(sql)).getRowObjectsJson() as Array<Record<string, unknown>>;
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

describe('current-state MERGE on DuckDB', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await Harness.create();
  });
  afterEach(() => h.close());

  it('snapshot reads, inserts, updates and deletes leave the latest row per key, with its order and op', async () => {
    // Arrange
    const update = change('u', 40, { id: 1, name: 'a2', qty: 5, note: 'n1' });

    // Act
    await h.apply([
      change('r', 10, { id: 1, name: 'a', qty: 1, note: 'n1' }),
      change('r', 10, { id: 2, name: 'b', qty: 2, note: 'n2' }),
      change('c', 30, { id: 3, name: 'c', qty: 3, note: 'n3' }),
      update,
      change('d', 50, { id: 2 }),
    ]);

    // Assert
    expect(await h.rows()).toEqual({
      1: { name: 'a2', qty: '5', note: 'n1' },
      3: { name: 'c', qty: '3', note: 'n3' },
    });
    const [meta] = await h.query('SELECT _cdc_key, _cdc_order, _cdc_op FROM items WHERE id = 1');
    expect(meta).toEqual({ _cdc_key: '{"id":1}', _cdc_order: update.source.order, _cdc_op: 'u' });
    expect(await h.query('SELECT _cdc_key FROM items_deleted')).toEqual([{ _cdc_key: '{"id":2}' }]);
  });

  it('inside a range, source order decides, not the order of the rows in the log', async () => {
    // Act
    await h.apply([
      change('u', 30, { id: 1, name: 'third', qty: 3, note: 'x' }),
      change('c', 10, { id: 1, name: 'first', qty: 1, note: 'x' }),
      change('u', 20, { id: 1, name: 'second', qty: 2, note: 'x' }),
      change('d', 50, { id: 2 }),
      change('c', 40, { id: 2, name: 'gone', qty: 1, note: 'x' }),
    ]);

    // Assert
    expect(await h.rows()).toEqual({ 1: { name: 'third', qty: '3', note: 'x' } });
  });

  it('a range older than one applied before changes nothing: no older value, no deleted row back', async () => {
    // Arrange: the same two ranges, in order on one table and newest first on another
    const older = [change('c', 10, { id: 1, name: 'a', qty: 1, note: 'x' }), change('c', 20, { id: 2, name: 'b' })];
    const newer = [
      change('u', 30, { id: 1, name: 'a2', qty: 2, note: 'x' }),
      change('d', 40, { id: 2 }),
      change('c', 50, { id: 3, name: 'c', qty: 3, note: 'y' }),
    ];
    const inOrder = await Harness.create();
    await inOrder.apply(older);
    await inOrder.apply(newer);

    // Act
    await h.apply(newer);
    await h.apply(older);

    // Assert
    expect(await h.rows()).toEqual({
      1: { name: 'a2', qty: '2', note: 'x' },
      3: { name: 'c', qty: '3', note: 'y' },
    });
    expect(await h.dump()).toEqual(await inOrder.dump());
    inOrder.close();
  });

  it('a range applied twice, or again after its statements stopped at any point, leaves the same tables', async () => {
    // Arrange
    await h.apply([change('c', 10, { id: 1, name: 'a', qty: 1, note: 'x' }), change('c', 20, { id: 2, name: 'b' })]);
    const range = h.write([
      change('u', 30, { id: 1, name: 'a2', qty: 2, note: TOAST }),
      change('d', 40, { id: 2 }),
      change('t', 45),
      change('c', 50, { id: 3, name: 'c', qty: 3, note: 'y' }),
      change('d', 60, { id: 3 }),
      change('c', 70, { id: 4, name: 'd', qty: 4, note: 'z' }),
    ]);
    const statements = h.statements(range);
    await h.run(statements);
    const once = await h.dump();

    // Act: the whole list again, then every prefix of it followed by the whole list, on fresh tables
    await h.run(statements);
    const twice = await h.dump();
    const interrupted: unknown[] = [];
    for (let stop = 0; stop < statements.length; stop++) {
      const other = await Harness.create();
      await other.apply([
        change('c', 10, { id: 1, name: 'a', qty: 1, note: 'x' }),
        change('c', 20, { id: 2, name: 'b' }),
      ]);
      await other.run(statements.slice(0, stop));
      await other.run(statements);
      interrupted.push(await other.dump());
      other.close();
    }

    // Assert
    expect(twice).toEqual(once);
    for (const dump of interrupted) expect(dump).toEqual(once);
    expect(await h.rows()).toEqual({ 4: { name: 'd', qty: '4', note: 'z' } });
  });

  it('a truncate removes every older row, its range’s earlier changes and any older change applied later', async () => {
    // Arrange
    const before = [change('c', 10, { id: 1, name: 'a', qty: 1, note: 'x' }), change('c', 20, { id: 2, name: 'b' })];
    await h.apply(before);

    // Act
    await h.apply([
      change('c', 30, { id: 3, name: 'c', qty: 3, note: 'x' }),
      change('t', 40),
      change('c', 50, { id: 4, name: 'd', qty: 4, note: 'y' }),
    ]);
    const afterTruncate = await h.rows();
    await h.apply(before);
    await h.apply([change('u', 35, { id: 3, name: 'late', qty: 0, note: 'x' })]);

    // Assert
    expect(afterTruncate).toEqual({ 4: { name: 'd', qty: '4', note: 'y' } });
    expect(await h.rows()).toEqual(afterTruncate);
    expect(await h.query(`SELECT _cdc_key FROM items_deleted WHERE _cdc_key = '*'`)).toEqual([{ _cdc_key: '*' }]);
  });

  it('a column the change did not send (TOAST) keeps the latest value sent, or the row’s, or stays NULL', async () => {
    // Arrange
    await h.apply([change('c', 10, { id: 1, name: 'a', qty: 1, note: 'long text' })]);

    // Act
    await h.apply([
      change('u', 20, { id: 1, name: 'a2', qty: 1, note: TOAST }), // kept from the table
      change('c', 30, { id: 2, name: 'b', qty: 2, note: 'sent' }),
      change('u', 40, { id: 2, name: 'b2', qty: 2, note: TOAST }), // kept from the range's earlier change
      change('c', 50, { id: 3, name: 'c', qty: 3, note: 'cleared below' }),
      change('u', 60, { id: 3, name: 'c', qty: 3, note: null }),
      change('u', 70, { id: 3, name: 'c2', qty: 3, note: TOAST }), // the latest value sent is NULL
      change('u', 80, { id: 5, name: 'e', qty: 5, note: TOAST }), // no row, nothing sent: NULL
    ]);

    // Assert
    expect(await h.rows()).toEqual({
      1: { name: 'a2', qty: '1', note: 'long text' },
      2: { name: 'b2', qty: '2', note: 'sent' },
      3: { name: 'c2', qty: '3', note: null },
      5: { name: 'e', qty: '5', note: null },
    });
  });

  it('an older change applied after a newer one replaces exactly the kept values older than itself', async () => {
    // Arrange: row 1's create reaches the table after its TOAST update; row 2's update of the note (20) reaches it
    // after a later TOAST update (30) had kept the note of the create (10). As when a rebuild restores a lost file or
    // a dead letter is redriven.
    await h.apply([change('c', 10, { id: 2, name: 'b', qty: 1, note: 'short' })]);
    await h.apply([
      change('u', 20, { id: 1, name: 'renamed', qty: 2, note: TOAST }),
      change('u', 30, { id: 2, name: 'b3', qty: 3, note: TOAST }),
    ]);
    expect(await h.rows()).toEqual({
      1: { name: 'renamed', qty: '2', note: null },
      2: { name: 'b3', qty: '3', note: 'short' },
    });

    // Act
    const late = [
      change('c', 10, { id: 1, name: 'first', qty: 1, note: 'long text' }),
      change('u', 20, { id: 2, name: 'b2', qty: 2, note: 'long text' }),
    ];
    await h.apply(late);
    await h.apply(late);
    await h.apply([change('u', 15, { id: 2, name: 'b1', qty: 1, note: 'older' })]);

    // Assert: the notes of the late changes (newer than the kept ones), names and quantities of the newer changes
    expect(await h.rows()).toEqual({
      1: { name: 'renamed', qty: '2', note: 'long text' },
      2: { name: 'b3', qty: '3', note: 'long text' },
    });
  });

  it('a deleted row inserted again comes back with its new values, in one range or across two', async () => {
    // Arrange
    await h.apply([change('c', 10, { id: 1, name: 'a', qty: 1, note: 'x' }), change('c', 20, { id: 2, name: 'b' })]);

    // Act
    await h.apply([change('d', 30, { id: 1 }), change('c', 40, { id: 1, name: 'again', qty: 9, note: 'new' })]);
    await h.apply([change('d', 50, { id: 2 })]);
    await h.apply([change('c', 60, { id: 2, name: 'back', qty: 7, note: 'new' })]);

    // Assert
    expect(await h.rows()).toEqual({
      1: { name: 'again', qty: '9', note: 'new' },
      2: { name: 'back', qty: '7', note: 'new' },
    });
    expect(await h.query('SELECT * FROM items_deleted')).toEqual([]);
  });

  it('the range selects changes by processing time: after `fromProcessedAt`, up to `toProcessedAt`', async () => {
    // Arrange
    const relation = h.write([
      change('c', 10, { id: 1, name: 'at 1000', qty: 1, note: 'x' }, 1_000),
      change('c', 20, { id: 2, name: 'at 2000', qty: 2, note: 'x' }, 2_000),
      change('c', 30, { id: 3, name: 'at 3000', qty: 3, note: 'x' }, 3_000),
    ]);

    // Act
    await h.run(h.statements(relation, { fromProcessedAt: 1_000, toProcessedAt: 2_000 }));
    const first = await h.rows();
    await h.run(h.statements(relation, { fromProcessedAt: 2_000 }));

    // Assert
    expect(Object.keys(first)).toEqual(['2']);
    expect(Object.keys(await h.rows())).toEqual(['2', '3']);
  });

  it('a change in the range twice (a replayed batch, two files) is applied once, without a MERGE conflict', async () => {
    // Arrange
    const insert = change('c', 10, { id: 1, name: 'a', qty: 1, note: 'x' });
    const update = change('u', 20, { id: 1, name: 'b', qty: 2, note: 'x' });
    const files = [h.write([insert, update]), h.write([update])].map((r) => /'([^']+)'/.exec(r)?.[1]);

    // Act
    await h.run(h.statements(`read_parquet(['${files.join("', '")}'], union_by_name = true)`));

    // Assert
    expect(await h.rows()).toEqual({ 1: { name: 'b', qty: '2', note: 'x' } });
  });

  it('ranges of a random history, each applied in order and some again later, end as the source', async () => {
    // Arrange: a source table changed at random (inserts, updates with and without the TOASTed note, deletes,
    // re-inserts, a rare truncate), its changes cut into ranges
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const source = new Map<number, Row>();
    const events: ChangeEvent[] = [];
    for (let lsn = 10; events.length < 400; lsn += 10) {
      const id = 1 + Math.floor(random() * 25);
      const row = source.get(id);
      const dice = random();
      if (dice < 0.01) {
        source.clear();
        events.push(change('t', lsn));
      } else if (!row) {
        const inserted = { id, name: `n${lsn}`, qty: lsn, note: `note ${lsn}` };
        source.set(id, inserted);
        events.push(change('c', lsn, inserted));
      } else if (dice < 0.2) {
        source.delete(id);
        events.push(change('d', lsn, { id }));
      } else {
        const toast = dice < 0.6;
        const updated = { ...row, name: `n${lsn}`, ...(toast ? {} : { note: dice < 0.65 ? null : `note ${lsn}` }) };
        source.set(id, updated);
        events.push(change('u', lsn, { ...updated, note: toast ? TOAST : updated.note }));
      }
    }
    const ranges: ChangeEvent[][] = [];
    for (let at = 0; at < events.length; ) {
      const size = 1 + Math.floor(random() * 40);
      ranges.push(events.slice(at, at + size).sort(() => random() - 0.5));
      at += size;
    }

    // Act
    for (const [i, range] of ranges.entries()) {
      await h.apply(range);
      if (i > 0 && random() < 0.4) await h.apply(ranges[Math.floor(random() * i)] ?? []);
    }

    // Assert
    const expected = Object.fromEntries(
      [...source].map(([id, row]) => [String(id), { name: row.name, qty: String(row.qty), note: row.note }]),
    );
    expect(await h.rows()).toEqual(expected);
  });
});

describe('the generated statements', () => {
  it('refuse a table without a key and reserved column names', () => {
    const relations = { changesRelation: 'c', targetRelation: 't', deletedRelation: 'd' };
    expect(() => mergeStatements({ ...SHAPE, keyColumns: [] }, relations, {}, 'duckdb')).toThrow(
      expect.objectContaining({ code: 'KEYLESS_TABLE', retryable: false }),
    );
    expect(() =>
      mergeStatements(
        { ...SHAPE, columns: [...SHAPE.columns, { name: '_cdc_order', type: 'string' }] },
        relations,
        {},
        'duckdb',
      ),
    ).toThrow(expect.objectContaining({ code: 'INVALID_TABLE' }));
  });

  it('a table gains new columns and wider types in place; Athena refuses what Iceberg cannot do', async () => {
    // Arrange
    const narrow: CurrentStateTable = {
      ...SHAPE,
      columns: SHAPE.columns.map((c) => (c.name === 'qty' ? { ...c, type: 'int32' } : c)),
    };
    const h = await Harness.create(narrow);
    await h.apply([change('c', 10, { id: 1, name: 'a', qty: 1, note: 'x' })]);
    const seen: CurrentStateTable = { ...SHAPE, columns: [...SHAPE.columns, { name: 'tier', type: 'string' }] };

    // Act
    const evolved = evolveTable(narrow, seen, 'items', 'duckdb');
    await h.run(evolved.statements);
    const relation = h.write([change('u', 20, { id: 1, name: 'a', qty: 2 ** 40, note: 'x' })], evolved.table);
    await h.run(h.statements(relation, {}, evolved.table));

    // Assert
    expect(evolved.table.columns.map((c) => `${c.name}:${c.type}`)).toEqual([
      'id:int64',
      'name:string',
      'qty:int64',
      'note:string',
      'tier:string',
    ]);
    expect(await h.rows()).toEqual({ 1: { name: 'a', qty: String(2 ** 40), note: 'x' } });
    expect(evolveTable(narrow, SHAPE, 'db.items', 'athena').statements).toEqual([
      'ALTER TABLE db.items CHANGE COLUMN `qty` `qty` bigint',
    ]);
    const withoutNote: CurrentStateTable = { ...SHAPE, columns: SHAPE.columns.filter((c) => c.name !== 'note') };
    expect(evolveTable(SHAPE, withoutNote, 'db.items', 'athena').statements).toEqual([]);
    expect(evolveTable(SHAPE, withoutNote, 'db.items', 'athena', { dropMissing: true }).statements).toEqual([
      'ALTER TABLE db.items DROP COLUMN `note`',
    ]);
    const retyped: CurrentStateTable = { ...SHAPE, columns: [{ name: 'qty', type: 'string' }] };
    expect(() => evolveTable(SHAPE, retyped, 'db.items', 'athena')).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED_TYPE_CHANGE' }),
    );
    h.close();
  });

  it('Athena: the demo products table’s DDL and MERGE statements', async () => {
    // Arrange
    const products: CurrentStateTable = {
      table: 'pg.public.products',
      keyColumns: ['id'],
      columns: [
        { name: 'sku', type: 'string' },
        { name: 'id', type: 'int64' },
        { name: 'name', type: 'string' },
        { name: 'price', type: 'string' },
        { name: 'weight_kg', type: 'string' },
        { name: 'attributes', type: 'json' },
        { name: 'tags', type: 'json' },
        { name: 'description', type: 'string' },
      ],
    };
    const location = 's3://warehouse-bucket/current/';

    // Act
    const sql = [
      createTableStatement(
        products,
        { relation: 'cdc_sync_dev.pg_public_products_current', location: `${location}products/` },
        'athena',
      ),
      createDeletedTableStatement(
        { relation: 'cdc_sync_dev.pg_public_products_deleted', location: `${location}products_deleted/` },
        'athena',
      ),
      ...mergeStatements(
        products,
        {
          changesRelation: 'cdc_sync_dev.pg_public_products_changes',
          targetRelation: 'cdc_sync_dev.pg_public_products_current',
          deletedRelation: 'cdc_sync_dev.pg_public_products_deleted',
        },
        { fromProcessedAt: Date.UTC(2026, 0, 2, 3, 4, 5, 6), toProcessedAt: Date.UTC(2026, 0, 2, 3, 9, 5, 6) },
        'athena',
      ),
    ];

    // Assert
    await expect(`${sql.join(';\n\n')};\n`).toMatchFileSnapshot('__snapshots__/current-state-products.athena.sql');
    expect(() => createTableStatement(products, { relation: 'x' }, 'athena')).toThrow(/needs a location/);
  });
});
