import { describe, expect, it } from 'vitest';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import { SchemaHistoryError } from '../../functions/core/errors';
import {
  classifySchemaChange,
  dataCollectionOf,
  policyFor,
  SchemaHistory,
  type SchemaHistoryOptions,
  signalIdOf,
} from '../../functions/core/schema-history';
import type { ChangeEvent, SchemaColumn, TableSchemaVersion } from '../../functions/core/types';
import { type PgChangeSpec, pgMessage, recordOf } from '../support/builders';
import { MemorySchemaRegistry, MemorySignaller } from '../support/fakes';

const id: SchemaColumn = { name: 'id', type: 'int32', optional: false };
const name: SchemaColumn = { name: 'name', type: 'string', optional: true };
const col = (c: Partial<SchemaColumn> & { name: string }): SchemaColumn => ({ type: 'string', optional: true, ...c });
const streamed = { op: 'u' as const, snapshot: 'false' };

describe('classifySchemaChange', () => {
  it.each<[string, SchemaColumn[] | undefined, SchemaColumn[], { op: ChangeEvent['op']; snapshot: string }, string]>([
    ['first version met on an initial snapshot read', undefined, [id], { op: 'r', snapshot: 'first' }, 'initial'],
    ['first version met on the last snapshot read', undefined, [id], { op: 'r', snapshot: 'last' }, 'initial'],
    ['first version met on a streamed change', undefined, [id], streamed, 'new-table'],
    ['first version met on an incremental read', undefined, [id], { op: 'r', snapshot: 'incremental' }, 'new-table'],
    ['an optional column without default added', [id], [id, name], streamed, 'additive-nullable'],
    [
      'an optional column with a null default added',
      [id],
      [id, col({ name: 'n', default: null })],
      streamed,
      'additive-nullable',
    ],
    [
      'an optional column with a default added',
      [id],
      [id, col({ name: 'n', default: 'x' })],
      streamed,
      'unreconcilable',
    ],
    ['a required column added', [id], [id, col({ name: 'n', optional: false })], streamed, 'unreconcilable'],
    ['a column dropped', [id, name], [id], streamed, 'unreconcilable'],
    ['a column renamed', [id, name], [id, col({ name: 'full_name' })], streamed, 'unreconcilable'],
    ['a column retyped', [id], [{ ...id, type: 'int64' }], streamed, 'unreconcilable'],
    ['a logical type changed', [id], [{ ...id, logical: 'io.debezium.time.Date' }], streamed, 'unreconcilable'],
    [
      'a decimal scale changed',
      [col({ name: 'p', type: 'bytes', parameters: { scale: '2' } })],
      [col({ name: 'p', type: 'bytes', parameters: { scale: '3' } })],
      streamed,
      'unreconcilable',
    ],
    ['a column made optional', [id], [{ ...id, optional: true }], streamed, 'unreconcilable'],
    ['a default changed', [name], [{ ...name, default: 'x' }], streamed, 'unreconcilable'],
    ['columns reordered', [id, name], [name, id], streamed, 'unreconcilable'],
  ])('%s → %s', (_case, previous, next, first, expected) => {
    // Act
    const result = classifySchemaChange(previous, next, first);
    // Assert
    expect(result.classification).toBe(expected);
    expect(result.reconcile).toBe(expected === 'new-table' || expected === 'unreconcilable');
  });

  it('says what changed per column', () => {
    // Act
    const { changes } = classifySchemaChange([id, name], [{ ...id, type: 'int64' }, col({ name: 'n' })], streamed);
    // Assert
    expect(changes).toEqual([
      { column: 'name', change: 'dropped', from: 'string' },
      { column: 'id', change: 'retyped', from: 'int32', to: 'int64' },
      { column: 'n', change: 'added', to: { type: 'string', optional: true } },
    ]);
  });
});

describe('policyFor and dataCollectionOf', () => {
  it('picks the table policy by data collection, then table id, then the default', () => {
    const policy = {
      default: 'auto' as const,
      tables: { 'public.big': 'alarm' as const, 'pg.public.x': 'off' as const },
    };
    expect(policyFor(policy, 'public.big', 'pg.public.big')).toBe('alarm');
    expect(policyFor(policy, 'public.x', 'pg.public.x')).toBe('off');
    expect(policyFor(policy, 'public.orders', 'pg.public.orders')).toBe('auto');
  });

  it('names PostgreSQL tables schema.table and MySQL tables db.table', () => {
    expect(dataCollectionOf(event({ op: 'c', after: { id: 1 }, lsn: 100 }).source)).toBe('public.orders');
    const mysql = { ...event({ op: 'c', after: { id: 1 }, lsn: 100 }).source, connector: 'mysql', schema: null };
    expect(dataCollectionOf(mysql)).toBe('shop.orders');
  });
});

function event(spec: PgChangeSpec): ChangeEvent {
  const outcome = new JsonDebeziumDecoder().decode(recordOf(pgMessage(spec)), 1);
  if (outcome.kind !== 'event') throw new Error(JSON.stringify(outcome));
  return outcome.event;
}

const v = (fingerprint: string, columns: SchemaColumn[]): TableSchemaVersion => ({ fingerprint, columns });
const V1 = v('f1', [id]);
const V2 = v('f2', [id, name]); // additive nullable
const V3 = v('f3', [{ ...id, type: 'int64' }, name]); // retyped

function setup(options: Partial<SchemaHistoryOptions> = {}) {
  const registry = new MemorySchemaRegistry();
  const signaller = new MemorySignaller();
  const history = new SchemaHistory({ registry, signaller, clock: () => 1_000, ...options });
  return { registry, signaller, history };
}

describe('SchemaHistory.meet', () => {
  it('registers a table first met in its snapshot as version 1 without reconciling', async () => {
    // Arrange
    const { history, registry, signaller } = setup();
    // Act
    const met = await history.meet(
      'cache',
      'cache#t-0',
      event({ op: 'r', after: { id: 1 }, lsn: 100, snapshot: 'first' }),
      V1,
    );
    // Assert
    expect(met).toMatchObject({ version: 1, report: { classification: 'initial', action: 'none', to: 'f1' } });
    expect(registry.latestItems.get('pg.public.orders')).toMatchObject({ version: 1, fingerprint: 'f1' });
    expect(signaller.sent).toEqual([]);
  });

  it('lets one registration win; the loser meeting the same version does nothing global', async () => {
    // Arrange
    const { history, registry, signaller } = setup();
    await history.meet('cache', 'cache#t-0', event({ op: 'r', after: { id: 1 }, lsn: 100, snapshot: 'first' }), V1);
    // Act: two lanes meet the retyped version
    const winner = await history.meet('cache', 'cache#t-0', event({ op: 'u', after: { id: 1 }, lsn: 200 }), V3);
    const loser = await history.meet('audit', 'audit#t-0', event({ op: 'u', after: { id: 1 }, lsn: 200 }), V3);
    // Assert
    expect(winner).toMatchObject({
      version: 2,
      report: { lane: 'cache', from: 'f1', to: 'f3', classification: 'unreconcilable', action: 'signalled' },
    });
    expect(loser).toEqual({ version: 2 });
    expect(signaller.sent).toEqual([
      {
        id: signalIdOf('pg.public.orders', 2),
        type: 'execute-snapshot',
        data: { 'data-collections': ['public.orders'], type: 'incremental' },
      },
    ]);
    expect(registry.versions.get('pg.public.orders#v2')).toMatchObject({ reconciliation: 'signalled' });
  });

  it('never moves the latest version back for a partition behind it', async () => {
    // Arrange
    const { history, registry } = setup();
    await history.meet('cache', 'cache#t-0', event({ op: 'u', after: { id: 1 }, lsn: 300 }), V2);
    // Act: a lagging partition still carries the older version, at an older order
    const met = await history.meet('cache', 'cache#t-1', event({ op: 'u', after: { id: 2 }, lsn: 150 }), V1);
    // Assert
    expect(met).toEqual({});
    expect(registry.latestItems.get('pg.public.orders')).toMatchObject({ version: 1, fingerprint: 'f2' });
  });

  it('registers a version first met in the first transaction after a connector start, whose order has no commit part', async () => {
    // Arrange
    const { history, registry, signaller } = setup();
    await history.meet('cache', 'cache#t-0', event({ op: 'u', after: { id: 1 }, lsn: 300 }), V1);
    // Act: the DDL ran while the connector was down; its first transaction after the start carries the new version
    const met = await history.meet(
      'cache',
      'cache#t-0',
      event({ op: 'u', after: { id: 1 }, lsn: 400, lastCommitLsn: null }),
      V3,
    );
    // ...and a lagging partition's first transaction still carries the version registered before
    const lagging = await history.meet(
      'cache',
      'cache#t-1',
      event({ op: 'u', after: { id: 2 }, lsn: 390, lastCommitLsn: null }),
      V1,
    );
    // Assert
    expect(met).toMatchObject({ version: 2, report: { from: 'f1', to: 'f3', action: 'signalled' } });
    expect(signaller.sent.map((s) => s.id)).toEqual([
      signalIdOf('pg.public.orders', 1),
      signalIdOf('pg.public.orders', 2),
    ]);
    expect(lagging).toEqual({ version: 1 });
    expect(registry.latestItems.get('pg.public.orders')).toMatchObject({ version: 2, fingerprint: 'f3' });
  });

  it('does not signal for an additive nullable column', async () => {
    // Arrange
    const { history, signaller } = setup();
    await history.meet('cache', 'c', event({ op: 'r', after: { id: 1 }, lsn: 100, snapshot: 'true' }), V1);
    // Act
    const met = await history.meet('cache', 'c', event({ op: 'u', after: { id: 1 }, lsn: 200 }), V2);
    // Assert
    expect(met.report).toMatchObject({ classification: 'additive-nullable', action: 'none' });
    expect(signaller.sent).toEqual([]);
  });

  it.each([
    ['alarm', 'alarm'],
    ['off', 'off'],
  ] as const)('under policy %s reports %s and sends nothing', async (policy, action) => {
    // Arrange
    const { history, signaller, registry } = setup({
      policy: { default: 'auto', tables: { 'public.orders': policy } },
    });
    // Act
    const met = await history.meet('cache', 'c', event({ op: 'c', after: { id: 1 }, lsn: 200 }), V1);
    // Assert
    expect(met.report).toMatchObject({ classification: 'new-table', action });
    expect(signaller.sent).toEqual([]);
    expect(registry.versions.get('pg.public.orders#v1')).toMatchObject({ reconciliation: 'unreconciled' });
  });

  it('reports a change it cannot signal for when the lane has no signal channel', async () => {
    // Arrange
    const { history } = setup({ signaller: undefined });
    // Act
    const met = await history.meet('cache', 'c', event({ op: 'c', after: { id: 1 }, lsn: 200 }), V1);
    // Assert
    expect(met.report).toMatchObject({ action: 'no-signaller' });
  });

  it('fails retryably when the signal cannot be sent, and sends it when the partition retries', async () => {
    // Arrange
    const { history, signaller, registry } = setup();
    signaller.fail = new Error('broker down');
    const change = event({ op: 'c', after: { id: 1 }, lsn: 200 });
    // Act + Assert: the registration stands, the signal is pending
    await expect(history.meet('cache', 'cache#t-0', change, V1)).rejects.toThrow(SchemaHistoryError);
    expect(registry.versions.get('pg.public.orders#v1')).toMatchObject({ reconciliation: 'pending' });
    // Act: the same partition retries
    signaller.fail = undefined;
    const met = await history.meet('cache', 'cache#t-0', change, V1);
    // Assert
    expect(met).toEqual({ version: 1 });
    expect(signaller.sent).toHaveLength(1);
    expect(registry.versions.get('pg.public.orders#v1')).toMatchObject({ reconciliation: 'signalled' });
  });

  it('leaves a pending signal to its claimant until the claim expires, then another lane sends it', async () => {
    // Arrange: the winner registered, then failed before its signal went out (and never came back)
    const registry = new MemorySchemaRegistry();
    const broken = new MemorySignaller();
    broken.fail = new Error('crash');
    const lane = (signaller: MemorySignaller, now: number) =>
      new SchemaHistory({ registry, signaller, clock: () => now, claimMs: 1_000 });
    const change = event({ op: 'c', after: { id: 1 }, lsn: 200 });
    await expect(lane(broken, 1_000).meet('cache', 'cache#t-0', change, V1)).rejects.toThrow();
    const other = new MemorySignaller();
    // Act: another lane meets the version while the claim holds
    await lane(other, 1_500).meet('audit', 'audit#t-0', change, V1);
    // Assert
    expect(other.sent).toEqual([]);
    // Act: and after the claim expired
    await lane(other, 2_500).meet('audit', 'audit#t-0', change, V1);
    // Assert
    expect(other.sent).toHaveLength(1);
    expect(registry.versions.get('pg.public.orders#v1')).toMatchObject({ reconciliation: 'signalled' });
  });

  it('turns a registry outage into a retryable error', async () => {
    // Arrange
    const { history, registry } = setup();
    registry.fail = new Error('throttled');
    // Act + Assert
    await expect(history.meet('cache', 'c', event({ op: 'c', after: { id: 1 }, lsn: 200 }), V1)).rejects.toMatchObject({
      code: 'SCHEMA_REGISTRY_UNAVAILABLE',
      retryable: true,
    });
  });
});
