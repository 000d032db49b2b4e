import {
  AthenaClient,
  GetQueryExecutionCommand,
  type QueryExecutionState,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { EntityNotFoundException, GetTableCommand, GlueClient, type Table } from '@aws-sdk/client-glue';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../functions/core/errors';
import { CurrentStateRunError, createCurrentStateHandler } from '../../functions/current-state/handler';
import { CHANGE_LOG_META_COLUMNS } from '../../lib/constructs/change-log-schema';
import { TABLE_PARAMETERS } from '../../lib/constructs/warehouse-catalog';
import { captureEmf } from '../support/emf';

// The current-state function against mocked Athena, Glue and DynamoDB (Athena has no local emulator). Glue answers
// with the change-log table the data stack defines (lib/constructs/warehouse-catalog.ts parameter names); DynamoDB is
// a small store that evaluates the function's two conditional updates (lease, release); Athena records each
// statement and finishes it as the test says.

const NOW = Date.parse('2026-05-10T12:00:00Z');
const ENV = {
  GLUE_DATABASE: 'cdc_sync_dev',
  ATHENA_WORKGROUP: 'cdc-sync-dev',
  CURRENT_STATE_LOCATION: 's3://warehouse/current/',
  CURRENT_STATE_TABLES: 'orders_public_orders_changes',
  STATE_TABLE_NAME: 'dedupe',
  OVERLAP_SECONDS: '180',
  LOOKBACK_HOURS: '96',
  PARALLEL_TABLES: '2',
  LEASE_SECONDS: '600',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
};

const changesTable = (extra: Array<{ Name: string; Type: string }> = []): Table => ({
  Name: 'orders_public_orders_changes',
  DatabaseName: 'cdc_sync_dev',
  Parameters: {
    [TABLE_PARAMETERS.tableId]: 'orders.public.orders',
    [TABLE_PARAMETERS.keyColumns]: 'id',
    [TABLE_PARAMETERS.currentTable]: 'orders_public_orders_current',
    [TABLE_PARAMETERS.deletedTable]: 'orders_public_orders_deleted',
  },
  StorageDescriptor: {
    Columns: [
      ...CHANGE_LOG_META_COLUMNS.map((c) => ({ Name: c.name, Type: c.type })),
      { Name: 'id', Type: 'string' },
      { Name: 'customer_id', Type: 'bigint' },
      { Name: 'total', Type: 'string' },
      ...extra,
    ],
  },
});

/** The current-state table as Athena leaves it in Glue: the table's columns and the merge's metadata columns. */
const currentTable = (): Table => ({
  Name: 'orders_public_orders_current',
  StorageDescriptor: {
    Columns: [
      { Name: 'id', Type: 'string' },
      { Name: 'customer_id', Type: 'bigint' },
      { Name: 'total', Type: 'string' },
      { Name: '_cdc_key', Type: 'string' },
      { Name: '_cdc_order', Type: 'string' },
      { Name: '_cdc_op', Type: 'string' },
      { Name: '_cdc_commit_ts', Type: 'timestamp' },
    ],
  },
});

const athena = mockClient(AthenaClient);
const glue = mockClient(GlueClient);
const dynamodb = mockClient(DynamoDBClient);

let tables: Map<string, Table>;
let items: Map<string, Record<string, AttributeValue>>;
let statements: string[];
/** The state each statement ends in, by its index in the run (default SUCCEEDED). */
let outcome: (index: number) => { state: QueryExecutionState; retryable?: boolean };
let now: number;
/** What the function printed: EMF documents and log lines (kept off the test output). */
let printed: string[];

const context = (remainingMs = 600_000) => ({ getRemainingTimeInMillis: () => remainingMs }) as unknown as Context;

function handler(env: Record<string, string> = ENV) {
  return createCurrentStateHandler(env, {
    athena: new AthenaClient({ region: 'eu-west-1' }),
    glue: new GlueClient({ region: 'eu-west-1' }),
    dynamodb: new DynamoDBClient({ region: 'eu-west-1' }),
    clock: () => now,
    sleep: async () => undefined,
  });
}

/** UpdateItem as DynamoDB evaluates the function's lease and release updates. */
function updateItem(input: UpdateItemCommandInput) {
  const pk = input.Key?.pk?.S as string;
  const values = input.ExpressionAttributeValues ?? {};
  const item = items.get(pk) ?? { pk: { S: pk } };
  const n = (v: AttributeValue | undefined) => (v?.N === undefined ? undefined : Number(v.N));
  if (input.UpdateExpression?.startsWith('SET createdAt')) {
    const until = n(item.leaseUntil);
    if (until !== undefined && until >= (n(values[':now']) ?? 0)) {
      throw new ConditionalCheckFailedException({ message: 'leased', $metadata: {}, Item: item });
    }
    const next = {
      ...item,
      createdAt: item.createdAt ?? values[':now'],
      leaseId: values[':run'],
      leaseUntil: values[':until'],
    } as Record<string, AttributeValue>;
    items.set(pk, next);
    return { Attributes: next };
  }
  if (item.leaseId?.S !== values[':run']?.S)
    throw new ConditionalCheckFailedException({ message: 'lost', $metadata: {} });
  const through = values[':through'];
  if (through !== undefined && (n(item.appliedThrough) ?? -1) >= Number(through.N)) {
    throw new ConditionalCheckFailedException({ message: 'older', $metadata: {} });
  }
  const { leaseId: _id, leaseUntil: _until, ...rest } = item;
  items.set(pk, through === undefined ? rest : { ...rest, appliedThrough: through });
  return {};
}

const position = () => items.get('cs#orders.public.orders')?.appliedThrough?.N;

beforeEach(() => {
  printed = captureEmf().lines;
  now = NOW;
  statements = [];
  outcome = () => ({ state: 'SUCCEEDED' });
  items = new Map();
  tables = new Map([['orders_public_orders_changes', changesTable()]]);
  athena.reset();
  glue.reset();
  dynamodb.reset();
  glue.on(GetTableCommand).callsFake(async ({ Name }: { Name: string }) => {
    const table = tables.get(Name);
    if (!table) throw new EntityNotFoundException({ message: `${Name} not found`, $metadata: {} });
    return { Table: table };
  });
  dynamodb.on(UpdateItemCommand).callsFake(async (input: UpdateItemCommandInput) => updateItem(input));
  athena.on(StartQueryExecutionCommand).callsFake(async ({ QueryString }: { QueryString: string }) => {
    statements.push(QueryString);
    return { QueryExecutionId: `q${statements.length - 1}` };
  });
  athena.on(GetQueryExecutionCommand).callsFake(async ({ QueryExecutionId }: { QueryExecutionId: string }) => {
    const { state, retryable } = outcome(Number(QueryExecutionId.slice(1)));
    return {
      QueryExecution: {
        QueryExecutionId,
        Status: { State: state, AthenaError: { Retryable: retryable ?? false, ErrorMessage: 'COLUMN_NOT_FOUND' } },
        Statistics: { DataScannedInBytes: 1_000 },
      },
    };
  });
  athena.on(StopQueryExecutionCommand).resolves({});
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('current-state handler', () => {
  it('creates the Iceberg tables on the first run, then applies the whole change log up to the run start', async () => {
    // Act
    const result = await handler()({ task: 'merge' }, context());

    // Assert
    expect(statements.map((s) => s.split(/\s/).slice(0, 3).join(' '))).toEqual([
      'CREATE TABLE IF',
      'CREATE TABLE IF',
      'MERGE INTO "cdc_sync_dev"."orders_public_orders_deleted"',
      'DELETE FROM "cdc_sync_dev"."orders_public_orders_current"',
      'MERGE INTO "cdc_sync_dev"."orders_public_orders_current"',
      'MERGE INTO "cdc_sync_dev"."orders_public_orders_deleted"',
    ]);
    expect(statements[0]).toContain(
      '`cdc_sync_dev`.`orders_public_orders_current` (`id` string, `customer_id` bigint, `total` string,',
    );
    expect(statements[0]).toContain("LOCATION 's3://warehouse/current/orders_public_orders_current/'");
    expect(statements[0]).toContain("TBLPROPERTIES ('table_type' = 'ICEBERG'");
    expect(statements[1]).toContain("LOCATION 's3://warehouse/current/orders_public_orders_deleted/'");
    // No position yet: every day of the log, nothing processed after the run started.
    expect(statements[4]).toContain('FROM "cdc_sync_dev"."orders_public_orders_changes"\n');
    expect(statements[4]).not.toContain('_cdc_processed_at >');
    expect(statements[4]).toContain("_cdc_processed_at <= TIMESTAMP '2026-05-10 12:00:00.000'");
    expect(result.tables).toEqual([
      { table: 'orders.public.orders', status: 'applied', statements: 6, currentAsOf: NOW },
    ]);
    expect(position()).toBe(String(NOW));
    expect(items.get('cs#orders.public.orders')?.leaseId).toBeUndefined();
  });

  it('starts the next range an overlap before the last run, reading only the commit days it can hold', async () => {
    // Arrange: a first run, the Iceberg tables in Glue now, five minutes later.
    await handler()({ task: 'merge' }, context());
    tables.set('orders_public_orders_current', currentTable());
    tables.set('orders_public_orders_deleted', { Name: 'orders_public_orders_deleted' });
    statements = [];
    now = NOW + 300_000;

    // Act
    await handler()({}, context());

    // Assert: no DDL; from NOW - 180 s (overlap), days from NOW - 180 s - 96 h.
    expect(statements).toHaveLength(4);
    for (const sql of statements.filter((s) => s.includes('_cdc_table ='))) {
      expect(sql).toContain(`_cdc_processed_at > TIMESTAMP '2026-05-10 11:57:00.000'`);
      expect(sql).toContain(`_cdc_processed_at <= TIMESTAMP '2026-05-10 12:05:00.000'`);
      expect(sql).toContain(`(SELECT * FROM "cdc_sync_dev"."orders_public_orders_changes" WHERE dt >= '2026-05-06')`);
    }
    expect(position()).toBe(String(NOW + 300_000));
  });

  it('leaves the position where it was when a statement fails, and applies the same range again next time', async () => {
    // Arrange: a position; the rows MERGE (third statement of the merge) fails for good.
    await handler()({ task: 'merge' }, context());
    tables.set('orders_public_orders_current', currentTable());
    tables.set('orders_public_orders_deleted', { Name: 'orders_public_orders_deleted' });
    statements = [];
    now = NOW + 60_000;
    outcome = (i) => (i === 2 ? { state: 'FAILED', retryable: false } : { state: 'SUCCEEDED' });

    // Act
    const failed = await handler()({ task: 'merge' }, context()).catch((e: unknown) => e);

    // Assert: the run fails, not retryable (Athena says so), the statement after the failed one never ran.
    expect(failed).toBeInstanceOf(CurrentStateRunError);
    expect(failed).toMatchObject({ code: 'TABLES_FAILED', retryable: false });
    expect((failed as Error).message).toContain('QUERY_FAILED');
    expect(statements).toHaveLength(3);
    expect(position()).toBe(String(NOW));
    expect(items.get('cs#orders.public.orders')?.leaseId).toBeUndefined();

    // Act: the next run, with Athena well again.
    const failedRun = statements;
    statements = [];
    outcome = () => ({ state: 'SUCCEEDED' });
    await handler()({ task: 'merge' }, context());

    // Assert: the same range (same statements) once more, then the position moves.
    expect(statements.slice(0, 3)).toEqual(failedRun);
    expect(position()).toBe(String(NOW + 60_000));
  });

  it('applies nothing to a table another run holds, and reports its freshness from the stored position', async () => {
    // Arrange: a position from a run ten minutes ago, and a lease a slow run still holds.
    items.set('cs#orders.public.orders', {
      pk: { S: 'cs#orders.public.orders' },
      appliedThrough: { N: String(NOW - 600_000) },
      leaseId: { S: 'other-run' },
      leaseUntil: { N: String(NOW + 60_000) },
    });
    // Act
    const result = await handler()({ task: 'merge' }, context());

    // Assert
    expect(statements).toEqual([]);
    expect(result.tables[0]).toMatchObject({ status: 'busy', currentAsOf: NOW - 600_000 });
    const freshness = printed.map((l) => JSON.parse(l)).filter((d) => d.CurrentStateFreshness !== undefined);
    expect(freshness.map((d) => [d.table, d.CurrentStateFreshness, d.service])).toEqual([
      ['orders.public.orders', 600, 'cdc-sync-current-state'],
      [undefined, 600, 'cdc-sync-current-state'],
    ]);
  });

  it('reports a table that never succeeded as stale since its first try', async () => {
    // Arrange: the first run fails (Athena throttled: retryable), a second fails again 15 minutes later.
    outcome = () => ({ state: 'FAILED', retryable: true });
    await handler()({ task: 'merge' }, context()).catch(() => undefined);
    now = NOW + 900_000;
    printed.length = 0;

    // Act
    const failed = await handler()({ task: 'merge' }, context()).catch((e: unknown) => e);

    // Assert
    expect(failed).toMatchObject({ code: 'TABLES_FAILED', retryable: true });
    const rollup = printed.map((l) => JSON.parse(l)).find((d) => d.CurrentStateFreshness !== undefined && !d.table);
    expect(rollup?.CurrentStateFreshness).toBe(900);
    expect(position()).toBeUndefined();
  });

  it('adds the columns the change log gained before merging', async () => {
    // Arrange: the Iceberg tables exist; the catalog added a `currency` column to the change log.
    tables.set('orders_public_orders_changes', changesTable([{ Name: 'currency', Type: 'string' }]));
    tables.set('orders_public_orders_current', currentTable());
    tables.set('orders_public_orders_deleted', { Name: 'orders_public_orders_deleted' });

    // Act
    await handler()({ task: 'merge' }, context());

    // Assert
    expect(statements[0]).toBe(
      'ALTER TABLE `cdc_sync_dev`.`orders_public_orders_current` ADD COLUMNS (`currency` string)',
    );
    expect(statements[3]).toContain('"currency" = CASE WHEN');
  });

  it('drops the columns the change log no longer has (dropped at the source) before merging', async () => {
    // Arrange: the Iceberg table still has `legacy`, which the catalog (and so the change log's table) dropped.
    const current = currentTable();
    current.StorageDescriptor?.Columns?.push({ Name: 'legacy', Type: 'string' });
    tables.set('orders_public_orders_current', current);
    tables.set('orders_public_orders_deleted', { Name: 'orders_public_orders_deleted' });

    // Act
    await handler()({ task: 'merge' }, context());

    // Assert
    expect(statements[0]).toBe('ALTER TABLE `cdc_sync_dev`.`orders_public_orders_current` DROP COLUMN `legacy`');
    expect(statements.slice(1).some((s) => s.includes('legacy'))).toBe(false);
  });

  it('stops a statement that outlives the function and reports a retryable timeout', async () => {
    // Arrange: statements never finish, each poll finds the clock further on; 200 s left, of which 20 s are kept for
    // bookkeeping.
    outcome = () => ({ state: 'RUNNING' });
    let calls = 0;
    athena.on(GetQueryExecutionCommand).callsFake(async ({ QueryExecutionId }: { QueryExecutionId: string }) => {
      now += 10_000 * ++calls;
      return { QueryExecution: { QueryExecutionId, Status: { State: 'RUNNING' } } };
    });

    // Act
    const failed = await handler()({ task: 'merge' }, context(200_000)).catch((e: unknown) => e);

    // Assert
    expect(failed).toMatchObject({ code: 'TABLES_FAILED', retryable: true });
    expect((failed as Error).message).toContain('QUERY_TIMEOUT');
    expect(athena.commandCalls(StopQueryExecutionCommand)).toHaveLength(1);
    expect(position()).toBeUndefined();
  });

  it('compacts and vacuums both Iceberg tables on the maintenance task', async () => {
    // Arrange
    tables.set('orders_public_orders_current', currentTable());
    tables.set('orders_public_orders_deleted', { Name: 'orders_public_orders_deleted' });

    // Act
    const result = await handler()({ task: 'maintain' }, context());

    // Assert
    expect(statements).toEqual([
      'OPTIMIZE cdc_sync_dev.orders_public_orders_current REWRITE DATA USING BIN_PACK',
      'VACUUM cdc_sync_dev.orders_public_orders_current',
      'OPTIMIZE cdc_sync_dev.orders_public_orders_deleted REWRITE DATA USING BIN_PACK',
      'VACUUM cdc_sync_dev.orders_public_orders_deleted',
    ]);
    expect(result.tables[0]).toMatchObject({ status: 'maintained', statements: 4 });
    expect(position()).toBeUndefined();
  });

  it('refuses to start without its configuration, naming what is missing', () => {
    const { STATE_TABLE_NAME: _missing, ...env } = ENV;
    expect(() => handler(env)).toThrow(ConfigError);
    expect(() => handler(env)).toThrow(/STATE_TABLE_NAME/);
  });
});
