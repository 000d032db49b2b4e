import { describe, expect, it } from 'vitest';
import { DynamoSchemaRegistry } from '../../functions/adapters/dynamodb-schema-registry';
import type { SchemaVersionRecord } from '../../functions/core/schema-history';
import { LOCAL_NAMES } from '../../tools/local/services';
import { useLocalServices } from '../support/local';

const services = useLocalServices();
const registry = () => new DynamoSchemaRegistry(services().clients.dynamodb, { tableName: LOCAL_NAMES.dedupeTable });
let tables = 0;
/** A table id no other test uses. */
const freshTable = () => `pg.public.t${process.pid}_${tables++}`;

function record(table: string, version: number, fingerprint: string, order: string): SchemaVersionRecord {
  return {
    table,
    version,
    fingerprint,
    columns: [{ name: 'id', type: 'int32', optional: false }],
    order,
    position: { lsn: order },
    classification: version === 1 ? 'initial' : 'unreconcilable',
    changes: [],
    reconciliation: version === 1 ? 'not-needed' : 'pending',
    dataCollection: 'public.t',
    topicPrefix: 'pg',
    at: 1_000,
  };
}

describe('DynamoSchemaRegistry (dynalite)', () => {
  it('registers a first version and reads it back', async () => {
    // Arrange
    const table = freshTable();
    // Act
    const moved = await registry().advance(table, 0, record(table, 1, 'f1', 'pg:1:100'));
    // Assert
    expect(moved).toBe(true);
    expect(await registry().latest(table)).toEqual({
      version: 1,
      fingerprint: 'f1',
      order: 'pg:1:100',
      columns: [{ name: 'id', type: 'int32', optional: false }],
    });
    expect(await registry().version(table, 1)).toEqual(record(table, 1, 'f1', 'pg:1:100'));
  });

  it('lets only one of two registrations from the same version win', async () => {
    // Arrange
    const table = freshTable();
    await registry().advance(table, 0, record(table, 1, 'f1', 'pg:1:100'));
    // Act
    const results = await Promise.all([
      registry().advance(table, 1, record(table, 2, 'f2', 'pg:1:200')),
      registry().advance(table, 1, record(table, 2, 'f2', 'pg:1:210')),
    ]);
    // Assert
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await registry().latest(table))?.version).toBe(2);
  });

  it('never moves the latest version back to an older order or the same fingerprint', async () => {
    // Arrange
    const table = freshTable();
    await registry().advance(table, 0, record(table, 1, 'f2', 'pg:1:300'));
    // Act
    const older = await registry().advance(table, 1, record(table, 2, 'f1', 'pg:1:100'));
    const same = await registry().advance(table, 1, record(table, 2, 'f2', 'pg:1:400'));
    // Assert
    expect([older, same]).toEqual([false, false]);
    expect(await registry().latest(table)).toMatchObject({ version: 1, fingerprint: 'f2', order: 'pg:1:300' });
    expect(await registry().version(table, 2)).toBeUndefined();
  });

  it('moves the latest version to an order without its commit part, which sorts below every known one', async () => {
    // Arrange
    const table = freshTable();
    const unknownCommit = `pg:1:${'0'.repeat(20)}:${'400'.padStart(20, '0')}`;
    await registry().advance(
      table,
      0,
      record(table, 1, 'f1', `pg:1:${'300'.padStart(20, '0')}:${'301'.padStart(20, '0')}`),
    );
    // Act
    const moved = await registry().advance(table, 1, record(table, 2, 'f2', unknownCommit));
    // Assert
    expect(moved).toBe(true);
    expect(await registry().latest(table)).toMatchObject({ version: 2, fingerprint: 'f2', order: unknownCommit });
  });

  it('claims a pending signal for one claimant at a time, until the claim expires', async () => {
    // Arrange
    const table = freshTable();
    await registry().advance(table, 0, record(table, 1, 'f1', 'pg:1:100'));
    await registry().advance(table, 1, record(table, 2, 'f2', 'pg:1:200'));
    // Act + Assert
    expect(await registry().claimSignal(table, 2, 'cache#t-0', 1_000, 2_000)).toBe(true);
    expect(await registry().claimSignal(table, 2, 'audit#t-0', 1_500, 2_500)).toBe(false);
    expect(await registry().claimSignal(table, 2, 'cache#t-0', 1_500, 2_500)).toBe(true);
    expect(await registry().claimSignal(table, 2, 'audit#t-0', 3_000, 4_000)).toBe(true);
    // a version with nothing pending cannot be claimed
    expect(await registry().claimSignal(table, 1, 'audit#t-0', 3_000, 4_000)).toBe(false);
  });

  it('marks a pending version signalled once', async () => {
    // Arrange
    const table = freshTable();
    await registry().advance(table, 0, record(table, 1, 'f1', 'pg:1:100'));
    await registry().advance(table, 1, record(table, 2, 'f2', 'pg:1:200'));
    // Act
    await registry().markSignalled(table, 2, 'schema-x-v2');
    await registry().markSignalled(table, 2, 'again');
    // Assert
    expect(await registry().version(table, 2)).toMatchObject({ reconciliation: 'signalled', signalId: 'schema-x-v2' });
    expect(await registry().claimSignal(table, 2, 'cache#t-0', 1_000, 2_000)).toBe(false);
  });
});
