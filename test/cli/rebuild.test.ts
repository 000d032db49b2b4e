/**
 * `npm run rebuild`: the command line (flags, the run file, exit codes), the rules it shares with the cache sink (the
 * as-of cutoff, the version guard, the row a key's changes leave), table names, and a deployed environment's wiring:
 * CloudFormation mocked (nothing local stands in for it), S3 and DynamoDB the local emulators. The rebuild itself
 * against a running pipeline: test/e2e/rebuild.test.ts.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CloudFormationClient, DescribeStacksCommand, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { DynamoDedupeStore } from '../../functions/adapters/dynamodb-dedupe-store';
import { S3AuditSink } from '../../functions/adapters/s3-audit-sink';
import { JsonDebeziumDecoder } from '../../functions/core/decode';
import type { ChangeEvent, Op, Row } from '../../functions/core/types';
import { environmentConfig } from '../../lib/config';
import { UsageError } from '../../tools/lib/args';
import type { RunCoordinates } from '../../tools/local/runner/control';
import { LOCAL_NAMES } from '../../tools/local/services';
import { main, parseRebuildArgs, type RebuildIo } from '../../tools/rebuild';
import { dedupeTableName, type RebuildAwsClients } from '../../tools/rebuild/aws';
import { asOfLabel, committedBy, expectedRow, notNewer, parseAsOf } from '../../tools/rebuild/order';
import { asOfTarget, RebuildSetupError, resolveTables } from '../../tools/rebuild/rebuild';
import { DEFAULT_PREFIXES } from '../../tools/smoke/aws';
import { pgMessage, recordOf } from '../support/builders';
import { useLocalServices } from '../support/local';
import { throwawayDir } from '../support/scratch';

const NOW = Date.parse('2024-05-01T12:00:00Z');

function capture(extra: Partial<RebuildIo> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: RebuildIo = { out: (t) => void out.push(t), err: (t) => void err.push(t), now: () => NOW, ...extra };
  return { out, err, io };
}

function usage(argv: string[]): string {
  try {
    parseRebuildArgs(argv, NOW);
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error(`no usage error for ${argv.join(' ')}`);
}

/** A decoded change of `pg.public.<table>`, committed at `commitTs`. */
function change(
  op: Op,
  row: Row | null,
  lsn: number,
  extra: { commitTs?: number; table?: string; offset?: number } = {},
) {
  const spec = {
    table: extra.table ?? 'orders',
    op,
    lsn,
    offset: extra.offset ?? lsn,
    ...(extra.commitTs !== undefined ? { commitTs: extra.commitTs } : {}),
    ...(op === 'd' ? { before: row } : op === 't' ? {} : { after: row }),
  };
  const outcome = new JsonDebeziumDecoder().decode(recordOf(pgMessage(spec as Parameters<typeof pgMessage>[0])), 1);
  if (outcome.kind !== 'event') throw new Error('not an event');
  return outcome.event;
}

describe('parseRebuildArgs', () => {
  it('takes the sink, tables, an as-of time and the environment flags', () => {
    // Act
    const local = parseRebuildArgs(
      ['cache', '--tables', 'orders, public.customers', '--as-of', '2024-05-01T10:30:00Z'],
      NOW,
    );
    const aws = parseRebuildArgs(
      ['warehouse', '--env', 'prod', '--dedupe-table', 't', '--audit-bucket', 'a', '--wait', '5', '--json'],
      NOW,
    );

    // Assert
    expect(local).toEqual({
      sink: 'cache',
      tables: ['orders', 'public.customers'],
      asOf: Date.parse('2024-05-01T10:30:00Z'),
      waitMs: 60_000,
      json: false,
    });
    expect(aws).toEqual({
      sink: 'warehouse',
      env: 'prod',
      dedupeTable: 't',
      auditBucket: 'a',
      waitMs: 5000,
      json: true,
    });
    expect(parseRebuildArgs(['--help'], NOW)).toBe('help');
  });

  it('refuses a missing or unknown sink, stray words, empty table names and out-of-range waits', () => {
    expect(usage([])).toBe('name the sink to rebuild: cache or warehouse');
    expect(usage(['audit'])).toMatch(/^the sink is cache or warehouse, got "audit"/);
    expect(usage(['cache', 'warehouse'])).toBe('unexpected argument warehouse');
    expect(usage(['cache', '--tables', 'a,,b'])).toMatch(/^--tables takes table names separated by commas/);
    expect(usage(['cache', '--wait', 'soon'])).toMatch(/^--wait must be a number of seconds/);
    expect(usage(['cache', '--wait=-1'])).toMatch(/^--wait must be a number of seconds/);
    expect(usage(['cache', '--tables'])).toBe('--tables needs a value');
    expect(usage(['cache', '--bogus'])).toBe('unknown option --bogus');
  });

  it('takes an as-of time only as an instant: with a zone, valid, not in the future', () => {
    expect(usage(['cache', '--as-of', '2024-05-01T10:30:00'])).toMatch(/ISO time with a zone/);
    expect(usage(['cache', '--as-of', '2024-05-01'])).toMatch(/ISO time with a zone/);
    expect(usage(['cache', '--as-of', '2024-02-30T10:00:00Z'])).toMatch(/not a valid time/);
    expect(usage(['cache', '--as-of', '2024-04-01T24:00:00Z'])).toMatch(/not a valid time/);
    expect(usage(['cache', '--as-of', '2024-05-01T12:00:01Z'])).toMatch(/is in the future/);
    expect(parseAsOf('2024-05-01T14:00:00+02:00', NOW)).toBe(NOW);
    expect(parseAsOf('2024-05-01T11:59:59.5Z', NOW)).toBe(NOW - 500);
  });

  it('keeps the environment flags for --env, where a local run says where its sinks are', () => {
    expect(usage(['cache', '--redis-url', 'redis://x:6379'])).toBe(
      '--redis-url needs --env (a local run says where its sinks are)',
    );
    expect(usage(['warehouse', '--dedupe-table', 't'])).toMatch(/^--dedupe-table needs --env/);
    expect(usage(['cache', '--env', 'dev', '--redis-url', 'http://x'])).toMatch(/^--redis-url must start with redis/);
  });
});

describe('the as-of cutoff and the cache rules', () => {
  it('keeps the changes committed at or before the time; one without a commit time cannot be placed', () => {
    // Arrange
    const before = change('c', { id: 1 }, 10, { commitTs: NOW - 1 });
    const at = change('u', { id: 1 }, 11, { commitTs: NOW });
    const after = change('u', { id: 1 }, 12, { commitTs: NOW + 1 });
    const undated: ChangeEvent = { ...before, source: { ...before.source, commitTs: null } };

    // Act + Assert
    expect([before, at, after, undated].map((e) => committedBy(e, NOW))).toEqual([true, true, false, false]);
    expect(asOfLabel(NOW)).toBe('2024-05-01T12:00:00.000Z');
    expect(asOfTarget('cache', 'cdc', NOW)).toBe('cdc-asof-2024-05-01T12:00:00.000Z');
    expect(asOfTarget('warehouse', 'changes/', NOW)).toBe('asof=2024-05-01T12:00:00.000Z/changes/');
  });

  it("compares orders as the cache's guard does: byte order, equal is not newer, other connector kinds never refuse", () => {
    expect(
      notNewer('pg:1:00000000000000000010:00000000000000000011', 'pg:1:00000000000000000010:00000000000000000012'),
    ).toBe(true);
    expect(
      notNewer('pg:1:00000000000000000010:00000000000000000012', 'pg:1:00000000000000000010:00000000000000000012'),
    ).toBe(true);
    expect(
      notNewer('pg:1:00000000000000000011:00000000000000000001', 'pg:1:00000000000000000010:00000000000000000012'),
    ).toBe(false);
    expect(notNewer('my:00000000000000000001:0:0', 'pg:1:00000000000000000010:00000000000000000012')).toBe(false);
  });

  it('gives the row the sink leaves: full images replace, TOAST merges keep, deletes and newer truncates remove', () => {
    // Arrange
    const created = change('c', { id: 1, name: 'a', description: 'long' }, 10);
    const merged = change('u', { id: 1, name: 'b', description: '__debezium_unavailable_value' }, 20);
    const deleted = change('d', { id: 1, name: 'b', description: 'long' }, 30);
    const truncated = change('t', null, 25);

    // Act + Assert: in any order given, applied in source order
    expect(expectedRow([merged, created]).row).toEqual(
      new Map([
        ['description', '"long"'],
        ['id', '1'],
        ['name', '"b"'],
      ]),
    );
    expect(expectedRow([merged]).row).toEqual(
      new Map([
        ['id', '1'],
        ['name', '"b"'],
      ]),
    );
    expect(expectedRow([created, merged, deleted])).toEqual({ row: null, version: deleted.source.order });
    expect(expectedRow([created, merged, truncated]).row).toBeNull();
    // A change older than the truncate does not bring the row back.
    expect(expectedRow([truncated, created]).row).toBeNull();
  });

  it('resolves table names: whole ids, or their ends when they name one table', () => {
    // Arrange
    const known = new Set(['pg.public.orders', 'pg.public.customers', 'pg.sales.orders']);

    // Act + Assert
    expect(resolveTables(['customers', 'pg.sales.orders'], known)).toEqual(['pg.public.customers', 'pg.sales.orders']);
    expect(resolveTables(['public.orders'], known)).toEqual(['pg.public.orders']);
    expect(() => resolveTables(['orders'], known)).toThrow('orders could be any of pg.public.orders, pg.sales.orders');
    expect(() => resolveTables(['invoices'], known)).toThrow(RebuildSetupError);
  });
});

describe('main', () => {
  it('says what is wrong with the command line, with the usage, and exits 2; --help prints the usage', async () => {
    const bad = capture();
    expect(await main(['cache', '--as-of', 'yesterday'], bad.io)).toBe(2);
    expect(bad.err.join('')).toMatch(/^npm run rebuild: --as-of takes an ISO time.*\n\nusage: npm run rebuild/s);
    const help = capture();
    expect(await main(['--help'], help.io)).toBe(0);
    expect(help.out.join('')).toMatch(/^usage: npm run rebuild -- <cache\|warehouse>/);
  });

  it('exits 2 without a local run, and for a live warehouse when the run does not say where its checkpoints are', async () => {
    // Arrange
    const dir = throwawayDir('rebuild-cli-');
    const coordinates: RunCoordinates = {
      source: { connectionString: 'postgres://u@127.0.0.1:1/db', heartbeatTable: null, topicPrefix: 'pg' },
      cache: null,
      s3: { endpoint: 'http://127.0.0.1:1', region: 'eu-west-1', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      warehouse: { bucket: 'wh', prefix: 'changes/' },
      audit: { bucket: 'au', prefix: 'audit/' },
    };
    const runFile = join(dir, 'run.json');
    await writeFile(runFile, JSON.stringify({ pid: process.pid, url: 'http://127.0.0.1:1', token: 't', coordinates }));
    const none = capture({ runFile: join(dir, 'missing.json') });
    const warehouse = capture({ runFile });
    const cache = capture({ runFile });

    // Act + Assert
    expect(await main(['cache'], none.io)).toBe(2);
    expect(none.err.join('')).toMatch(/no local run found/);
    expect(await main(['warehouse'], warehouse.io)).toBe(2);
    expect(warehouse.err.join('')).toMatch(/needs the lanes' checkpoints \(the dedupe table\)/);
    expect(await main(['cache'], cache.io)).toBe(2);
    expect(cache.err.join('')).toMatch(/no cache to rebuild/);
  });
});

describe('a deployed environment', () => {
  const services = useLocalServices();
  const staging = environmentConfig('staging');

  /** CloudFormation as the environment answers (mocked); S3 and DynamoDB the local emulators. */
  function clients(resources: Array<[string, string, string]>): RebuildAwsClients {
    const cloudFormation = new CloudFormationClient({ region: 'eu-west-1' });
    const mock = mockClient(cloudFormation);
    mock.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: 'cdc-sync-staging-data',
          CreationTime: new Date(),
          StackStatus: 'UPDATE_COMPLETE',
          Outputs: [
            { OutputKey: 'WarehouseBucketName', OutputValue: LOCAL_NAMES.warehouseBucket },
            { OutputKey: 'AuditBucketName', OutputValue: LOCAL_NAMES.auditBucket },
          ],
        },
      ],
    });
    mock.on(ListStackResourcesCommand).resolves({
      StackResourceSummaries: resources.map(([id, type, physical]) => ({
        LogicalResourceId: id,
        ResourceType: type,
        PhysicalResourceId: physical,
        ResourceStatus: 'UPDATE_COMPLETE',
        LastUpdatedTimestamp: new Date(),
      })),
    });
    return {
      cloudFormation,
      secretsManager: new SecretsManagerClient({ region: 'eu-west-1' }),
      s3: services().clients.s3,
      dynamodb: services().clients.dynamodb,
    };
  }

  it('finds the dedupe table among the data stack resources, or says to name it', async () => {
    const found = clients([
      ['DedupeTableReplica1234', 'AWS::DynamoDB::Table', 'not-this'],
      ['DedupeTable0A1B2C3D', 'AWS::DynamoDB::Table', 'cdc-sync-staging-data-DedupeTable-XYZ'],
    ]);
    expect(await dedupeTableName(staging, found)).toBe('cdc-sync-staging-data-DedupeTable-XYZ');
    await expect(dedupeTableName(staging, clients([]))).rejects.toThrow(
      'stack cdc-sync-staging-data has no dedupe table; name it with --dedupe-table',
    );
  });

  it("rebuilds the environment's warehouse from its audit bucket, with the lanes' checkpoints in its dedupe table", async () => {
    // Arrange: a table of its own audited under the environment's audit prefix; the warehouse lane committed offset 0
    const table = `t${Date.now()}`;
    const audited = [
      change('c', { id: 1 }, 10, { table, offset: 0 }),
      change('c', { id: 2 }, 11, { table, offset: 1 }),
    ];
    const partition = { id: `pg.public.${table}-0`, topic: `pg.public.${table}`, partition: 0, records: [] };
    const auditPrefix = staging.lanes.audit.prefix ?? DEFAULT_PREFIXES.audit;
    const sink = new S3AuditSink(services().clients.s3, { bucket: LOCAL_NAMES.auditBucket, prefix: auditPrefix });
    expect((await sink.write({ partition, events: audited, columns: [], state: undefined })).ok).toBe(true);
    const store = new DynamoDedupeStore(services().clients.dynamodb, {
      tableName: LOCAL_NAMES.dedupeTable,
      ttlDays: 1,
    });
    for (const [lane, offset] of [
      ['warehouse', 0],
      ['audit', 1],
    ] as const) {
      await store.commit(lane, [{ partition, previous: undefined, next: { offset, hw: '', hwIds: [], version: 1 } }]);
    }
    const aws = clients([['DedupeTable0A1B2C3D', 'AWS::DynamoDB::Table', LOCAL_NAMES.dedupeTable]]);
    const { out, err, io } = capture({ awsClients: () => aws });

    // Act
    const code = await main(['warehouse', '--env', 'staging', '--tables', table, '--json'], io);

    // Assert: the change at offset 0 restored, the one at 1 left to the lane
    expect(code, err.join('')).toBe(0);
    const summary = JSON.parse(out.join(''));
    expect(summary).toMatchObject({
      sink: 'warehouse',
      asOf: null,
      tables: { [`pg.public.${table}`]: { changes: 2, applied: 1, refusedOlder: 0, pendingInLane: 1 } },
    });
    expect(summary.target).toBe(
      `s3://${LOCAL_NAMES.warehouseBucket}/${staging.lanes.warehouse.prefix ?? DEFAULT_PREFIXES.warehouse}`,
    );
    expect(typeof summary.ms).toBe('number');
  });
});
