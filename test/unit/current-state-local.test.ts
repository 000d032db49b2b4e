/**
 * The current-state tables of `npm start` (tools/local/runner/current-state.ts) against the local S3 emulator: steps
 * apply the change-log objects written since the last one (a rewritten object again), tables follow new and wider
 * columns, keyless tables get none; verification (verifyCurrentState) finds a table that was tampered with; and the
 * kept file is what query.ts shows as `<table>`.
 */
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeLogParquet } from '../../functions/adapters/change-log-parquet';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, ColumnTypes, Row } from '../../functions/core/types';
import { downloadChangeLog } from '../../tools/lib/warehouse';
import { CurrentStateTables } from '../../tools/local/runner/current-state';
import type { SourceTable } from '../../tools/local/runner/source-rows';
import { StreamSummarizer, verifyCurrentState } from '../../tools/local/runner/verify';
import { LOCAL_NAMES } from '../../tools/local/services';
import { pgMessage, recordOf } from '../support/builders';
import { useLocalServices } from '../support/local';
import { throwawayDir } from '../support/scratch';

const ITEMS = 'pg.public.items';
const VIEWS = 'pg.public.views';
const decoder = new JsonDebeziumDecoder();
const services = useLocalServices();
const dir = throwawayDir('current-state-local-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function change(op: 'c' | 'u' | 'd' | 't', table: string, lsn: number, row: Row = {}, key?: Row | null): ChangeEvent {
  const image = op === 'd' ? { before: row } : { after: op === 't' ? null : row };
  const outcome = decoder.decode(recordOf(pgMessage({ op, table: table.split('.')[2], lsn, key, ...image })), 1_000);
  if (outcome.kind !== 'event') throw new Error(`not an event: ${outcome.kind}`);
  return outcome.event;
}

/** Writes a change-log object as the warehouse lane names them. */
async function put(table: string, name: string, events: ChangeEvent[], types: ColumnTypes): Promise<void> {
  await services().clients.s3.send(
    new PutObjectCommand({
      Bucket: LOCAL_NAMES.warehouseBucket,
      Key: `changes/table=${table}/date=2026-12-02/${name}.parquet`,
      Body: changeLogParquet(
        events,
        events.map(() => types),
      ),
    }),
  );
}

const ITEM_TYPES: ColumnTypes = new Map([
  ['id', 'int32'],
  ['name', 'string'],
]);

function sourceOf(rows: Row[]): Map<string, SourceTable> {
  return new Map([[ITEMS, { id: ITEMS, columns: undefined, rows: rows.map((row) => ({ key: { id: row.id }, row })) }]]);
}

describe('current-state tables of npm start', () => {
  let tables: CurrentStateTables;
  let closed = false;
  beforeAll(async () => {
    tables = await CurrentStateTables.open({
      s3: services().clients.s3,
      bucket: LOCAL_NAMES.warehouseBucket,
      prefix: 'changes/',
      dir: join(dir, 'objects'),
      database: join(dir, 'current-state.duckdb'),
    });
  });
  afterAll(async () => {
    if (!closed) await tables.close();
  });

  it('steps apply new and rewritten objects, follow the columns, and leave keyless tables history-only', async () => {
    // Arrange: two steps' worth of objects; between them a new column, a wider key type, a rewritten object
    await put(
      ITEMS,
      'a',
      [change('c', ITEMS, 10, { id: 1, name: 'a' }), change('c', ITEMS, 20, { id: 2, name: 'b' })],
      ITEM_TYPES,
    );
    await put(VIEWS, 'a', [change('c', VIEWS, 15, { path: '/' }, null)], new Map([['path', 'string']]));
    await put('pg.public.emptied', 'a', [change('t', 'pg.public.emptied', 16)], new Map());
    await tables.step();
    const first = { tables: tables.tables(), objects: tables.stats.objects };
    await put(
      ITEMS,
      'b',
      [
        change('u', ITEMS, 30, { id: 2, name: 'b2', tier: 'gold' }),
        change('c', ITEMS, 40, { id: 3_000_000_000, name: 'c' }),
      ],
      new Map([...ITEM_TYPES, ['id', 'int64'], ['tier', 'string']]),
    );
    await put(ITEMS, 'a', [change('c', ITEMS, 10, { id: 1, name: 'a' })], ITEM_TYPES); // rewritten with a subset

    // Act
    await tables.step();

    // Assert
    expect(first).toEqual({ tables: [ITEMS], objects: 2 }); // the truncate-only table waits to be known
    expect(tables.tables()).toEqual([ITEMS]);
    expect(tables.stats).toMatchObject({ steps: 2, objects: 4, changes: 5, lastError: null });
    expect(existsSync(join(dir, 'objects'))).toBe(false); // what a step downloaded goes once applied
    expect(await tables.query(`SELECT id, name, tier FROM ${CurrentStateTables.relation(ITEMS)} ORDER BY id`)).toEqual([
      { id: '1', name: 'a', tier: null },
      { id: '2', name: 'b2', tier: 'gold' },
      { id: '3000000000', name: 'c', tier: null },
    ]);
  });

  it('verification finds rows changed, missing and extra in a current-state table', async () => {
    // Arrange
    const rows = [
      { id: 1, name: 'a', tier: null },
      { id: 2, name: 'b2', tier: 'gold' },
      { id: 3_000_000_000, name: 'c', tier: null },
    ];
    const options = {
      currentState: tables,
      database: 'current-state.duckdb',
      stream: new StreamSummarizer().summary,
      tables: [ITEMS, VIEWS],
    };
    const views: SourceTable = { id: VIEWS, columns: undefined, rows: [{ key: null, row: { path: '/' } }] };
    const clean = await verifyCurrentState({ ...options, source: new Map([...sourceOf(rows), [VIEWS, views]]) });
    const relation = CurrentStateTables.relation(ITEMS);
    await tables.query(`UPDATE ${relation} SET name = 'Tampered' WHERE id = 2`);
    await tables.query(`DELETE FROM ${relation} WHERE id = 1`);
    await tables.query(`INSERT INTO ${relation} (id, name, _cdc_key, _cdc_order) VALUES (9, 'x', '{"id":9}', 'z')`);

    // Act
    const tampered = await verifyCurrentState({ ...options, source: sourceOf(rows) });

    // Assert
    expect(clean.consistent).toBe(true);
    expect(clean.tables[VIEWS]?.kind).toBe('not-applicable');
    expect(clean.tables[ITEMS]).toMatchObject({ kind: 'keyed', sourceRows: 3, sinkRows: 3, different: 0 });
    expect(tampered.consistent).toBe(false);
    expect(tampered.tables[ITEMS]).toMatchObject({ missing: 1, extra: 1, different: 1 });
    expect(tampered.tables[ITEMS]?.samples.join('\n')).toContain('name: source "b2", sink "Tampered"');
  });

  it('query.ts shows a kept current-state table as <table>, beside the change log', async () => {
    // Arrange: the run is over (the file is closed) and verification downloaded the change log, as after
    // `npm start -- --keep`
    await tables.close();
    closed = true;
    await downloadChangeLog(services().clients.s3, LOCAL_NAMES.warehouseBucket, 'changes/', join(dir, 'warehouse'));

    // Act
    const { stdout } = await promisify(execFile)(join('node_modules', '.bin', 'tsx'), [
      'tools/local/runner/query.ts',
      '--dir',
      join(dir, 'warehouse'),
      '--json',
      'SELECT id, name, _cdc_op FROM items ORDER BY id',
    ]);

    // Assert: the rows as the previous test left them (tampered with)
    expect(
      stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toEqual([
      { id: '2', name: 'Tampered', _cdc_op: 'u' },
      { id: '9', name: 'x', _cdc_op: null },
      { id: '3000000000', name: 'c', _cdc_op: 'c' },
    ]);
  });
});
