/**
 * `npm run smoke`: the command line (flags, the run file, exit codes, --json), the waiting logic over stand-in probes,
 * the canary writer against an embedded PostgreSQL, the S3 feed that finds new objects against the local S3
 * emulators, and the deployed environment's wiring with mocked CloudFormation and Secrets Manager (nothing local
 * stands in for them). The whole path against a real local run: test/e2e/smoke.test.ts.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CloudFormationClient, DescribeStacksCommand, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import { LaneEnvSchemas } from '../../functions/shared/config';
import { environmentConfig } from '../../lib/config';
import type { RunCoordinates, RunFile } from '../../tools/local/runner/control';
import { type LocalServices, startLocalServices } from '../../tools/local/services';
import { main, parseSmokeArgs, type SmokeIo } from '../../tools/smoke';
import { awsTarget, DEFAULT_PREFIXES, type SmokeAwsClients } from '../../tools/smoke/aws';
import { type CanaryWriter, openCanaryWriter, SmokeSetupError } from '../../tools/smoke/canary';
import { lastNumber, NewObjects, subPrefixes } from '../../tools/smoke/new-objects';
import type { Canary, SinkName, SinkProbe } from '../../tools/smoke/probes';
import { type SmokeResult, type SmokeTarget, smoke } from '../../tools/smoke/smoke';
import { unique, usePostgres } from '../capture/helpers';
import { throwawayDir } from '../support/scratch';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) } };
}

const COORDINATES: RunCoordinates = {
  source: {
    connectionString: 'postgres://u@127.0.0.1:1/db',
    heartbeatTable: 'public.cdc_heartbeat',
    topicPrefix: 'pg',
  },
  cache: { url: 'redis://127.0.0.1:6379', prefix: 'run42' },
  s3: { endpoint: 'http://127.0.0.1:2', region: 'eu-west-1', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  warehouse: { bucket: 'wh', prefix: 'changes/' },
  audit: { bucket: 'au', prefix: 'audit/' },
};

async function runFile(content: Partial<RunFile>): Promise<string> {
  const file = join(throwawayDir('smoke-'), 'run.json');
  await writeFile(file, JSON.stringify({ url: 'http://127.0.0.1:1', token: 't', schema: 'public', ...content }));
  return file;
}

const outcome = (latencyMs: number | null) => ({ seen: latencyMs !== null, latencyMs });

/** A smoke stand-in that records the target and answers `result`. */
function standIn(result: SmokeResult) {
  const targets: SmokeTarget[] = [];
  const smokeFn: SmokeIo['smoke'] = async (target) => {
    targets.push(target);
    return result;
  };
  return { targets, smoke: smokeFn };
}

const PASSED: SmokeResult = {
  ok: true,
  canaryId: -7,
  sinks: { cache: outcome(40), warehouse: outcome(900), audit: outcome(700) },
  deleted: { cache: outcome(30), warehouse: outcome(800), audit: outcome(650) },
};

describe('npm run smoke: the command line', () => {
  it.each([
    [['--bogus'], 'unknown option --bogus'],
    [['extra'], 'unexpected argument extra'],
    [['--timeout', 'soon'], '--timeout must be a number of seconds'],
    [['--timeout', '0'], '--timeout must be a number of seconds'],
    [['--timeout'], '--timeout needs a value'],
    [['--json=yes'], '--json takes no value'],
    [['--redis-url', 'redis://x:6379'], '--redis-url needs --env'],
    [['--source', 'orders'], '--source needs --env'],
    [['--warehouse-bucket', 'b'], '--warehouse-bucket needs --env'],
    [['--env', 'staging'], '--env needs --redis-url'],
    [['--env', 'staging', '--redis-url', 'http://cache:6379'], '--redis-url must start with redis://'],
  ])('rejects %j with a one-line reason and the usage, exit 2', async (argv, message) => {
    // Arrange
    const { io, out, err } = capture();

    // Act
    const code = await main(argv, io);

    // Assert
    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err.join('')).toContain(`npm run smoke: ${message}`);
    expect(err.join('')).toContain('usage: npm run smoke');
  });

  it('parses the flags: a 60 s timeout by default, seconds otherwise, the deployed flags with --env', () => {
    expect(parseSmokeArgs([])).toEqual({ timeoutMs: 60_000, json: false });
    expect(parseSmokeArgs(['--timeout', '2.5', '--json'])).toEqual({ timeoutMs: 2_500, json: true });
    expect(
      parseSmokeArgs(['--env', 'prod', '--redis-url', 'rediss://c:6379', '--source', 'orders', '--audit-bucket', 'a']),
    ).toEqual({
      env: 'prod',
      redisUrl: 'rediss://c:6379',
      source: 'orders',
      auditBucket: 'a',
      timeoutMs: 60_000,
      json: false,
    });
  });

  it('--help prints the usage on stdout, exit 0', async () => {
    const { io, out } = capture();
    expect(await main(['--help'], io)).toBe(0);
    expect(out.join('')).toContain('--redis-url <url>');
  });

  it.each([
    ['no run file', async () => join(throwawayDir('smoke-'), 'missing.json'), 'no local run found'],
    [
      'a run that ended',
      () => runFile({ pid: 2 ** 22 + 12_345, coordinates: COORDINATES }),
      'left from a run that ended',
    ],
    ['a run without coordinates', () => runFile({ pid: process.pid }), 'does not say where its sinks are'],
  ])('%s: one line, exit 2, nothing smoked', async (_, file, message) => {
    // Arrange
    const { io, err } = capture();
    const { targets, smoke: smokeFn } = standIn(PASSED);

    // Act
    const code = await main([], { ...io, runFile: await file(), smoke: smokeFn });

    // Assert
    expect(code).toBe(2);
    expect(err.join('')).toContain(message);
    expect(targets).toEqual([]);
  });

  it('smokes the running local run at the coordinates it announces; --json prints exactly one object, exit 0', async () => {
    // Arrange
    const { io, out, err } = capture();
    const { targets, smoke: smokeFn } = standIn(PASSED);
    const file = await runFile({ pid: process.pid, coordinates: COORDINATES });

    // Act
    const code = await main(['--json', '--timeout', '5'], { ...io, runFile: file, smoke: smokeFn });

    // Assert
    expect(code).toBe(0);
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0] as string)).toEqual(PASSED);
    expect(err).toEqual([]);
    const target = targets[0] as SmokeTarget;
    expect(target.source).toEqual({
      connection: COORDINATES.source.connectionString,
      heartbeatTable: 'public.cdc_heartbeat',
      topicPrefix: 'pg',
    });
    expect(target.cache?.prefix).toBe('run42');
    expect(target.warehouse).toEqual(COORDINATES.warehouse);
    expect(target.audit).toEqual(COORDINATES.audit);
  });

  it('a sink that did not show the canary: exit 1, and the table says which', async () => {
    // Arrange
    const { io, out } = capture();
    const failed: SmokeResult = {
      ok: false,
      canaryId: -7,
      sinks: { cache: outcome(40), warehouse: { seen: false, latencyMs: null, lastError: 'AccessDenied' } },
      deleted: null,
    };
    const file = await runFile({ pid: process.pid, coordinates: { ...COORDINATES, audit: COORDINATES.audit } });

    // Act
    const code = await main(['--timeout', '5'], { ...io, runFile: file, smoke: standIn(failed).smoke });

    // Assert
    expect(code).toBe(1);
    const text = out.join('');
    expect(text).toMatch(/cache\s+40 ms\s+not waited for/);
    expect(text).toMatch(/warehouse\s+NOT SEEN/);
    expect(text).toContain('FAILED: warehouse did not show the canary within 5 s (AccessDenied)');
  });

  it('an unknown environment: one line, exit 2', async () => {
    const { io, err } = capture();
    expect(await main(['--env', 'nope', '--redis-url', 'rediss://c:6379'], io)).toBe(2);
    expect(err.join('')).toContain("Unknown environment 'nope'");
  });

  it('--env staging: smokes the deployed environment found through its config, secret and stack', async () => {
    // Arrange
    const { io, out } = capture();
    const { targets, smoke: smokeFn } = standIn(PASSED);
    const clients = mockedAws();

    // Act
    const code = await main(['--env', 'staging', '--redis-url', 'rediss://cache.example:6379'], {
      ...io,
      awsClients: () => clients,
      smoke: smokeFn,
    });

    // Assert
    expect(code).toBe(0);
    expect(out.join('')).toContain('canary -7 in orders.public.cdc_heartbeat, staging (latency: commit → seen)');
    expect(targets[0]?.warehouse?.bucket).toBe('staging-warehouse-from-output');
  });
});

// ---------------------------------------------------------------------------------------------------------------

const staging = environmentConfig('staging');
const SECRET = { username: 'cdc_sync', password: 'not-a-real-one' };

/** CloudFormation and Secrets Manager as a deployed environment answers (no local service emulates them). */
function mockedAws(options: { outputs?: boolean } = {}) {
  const clients: SmokeAwsClients = {
    cloudFormation: new CloudFormationClient({ region: 'eu-west-1' }),
    secretsManager: new SecretsManagerClient({ region: 'eu-west-1' }),
    s3: new S3Client({ region: 'eu-west-1' }),
  };
  const cloudFormation = mockClient(clients.cloudFormation);
  cloudFormation.on(DescribeStacksCommand).resolves({
    Stacks: [
      {
        StackName: 'cdc-sync-staging-data',
        CreationTime: new Date(),
        StackStatus: 'UPDATE_COMPLETE',
        Outputs:
          options.outputs === false
            ? []
            : [
                { OutputKey: 'WarehouseBucketName', OutputValue: 'staging-warehouse-from-output' },
                { OutputKey: 'AuditBucketName', OutputValue: 'staging-audit-from-output' },
              ],
      },
    ],
  });
  cloudFormation
    .on(ListStackResourcesCommand, { NextToken: undefined })
    .resolves({
      StackResourceSummaries: [
        summary('AccessLogsBucket83A12D4E', 'AWS::S3::Bucket', 'staging-access-logs'),
        summary('WarehouseBucket56A35794', 'AWS::S3::Bucket', 'staging-warehouse-from-resource'),
      ],
      NextToken: 'page-2',
    })
    .on(ListStackResourcesCommand, { NextToken: 'page-2' })
    .resolves({
      StackResourceSummaries: [
        summary('AuditBucketPolicy1A2B3C4D', 'AWS::S3::BucketPolicy', 'policy'),
        summary('AuditBucket7486E833', 'AWS::S3::Bucket', 'staging-audit-from-resource'),
      ],
    });
  const secrets = mockClient(clients.secretsManager);
  secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify(SECRET) });
  return Object.assign(clients, { mocks: { cloudFormation, secrets } });
}

function summary(LogicalResourceId: string, ResourceType: string, PhysicalResourceId: string) {
  return {
    LogicalResourceId,
    ResourceType,
    PhysicalResourceId,
    LastUpdatedTimestamp: new Date(),
    ResourceStatus: 'UPDATE_COMPLETE' as const,
  };
}

describe('npm run smoke -- --env: the deployed environment', () => {
  it("writes with the source's own credentials over TLS, into its heartbeat table; buckets from the stack outputs", async () => {
    // Arrange
    const clients = mockedAws();

    // Act
    const target = await awsTarget(staging, clients, { redisUrl: 'rediss://cache.example:6379' });

    // Assert
    const orders = staging.sources.find((s) => s.name === 'orders');
    expect(clients.mocks.secrets.commandCalls(GetSecretValueCommand)[0]?.args[0].input).toEqual({
      SecretId: orders?.credentialsSecretArn,
    });
    expect(target.source).toEqual({
      connection: expect.objectContaining({
        host: orders?.hostname,
        port: 5432,
        database: 'orders',
        user: 'cdc_sync',
        password: SECRET.password,
        ssl: true,
      }) as pg.ClientConfig,
      heartbeatTable: 'public.cdc_heartbeat',
      topicPrefix: 'orders',
    });
    expect(target.cache?.prefix).toBe('cdc');
    expect(target.warehouse).toEqual({ bucket: 'staging-warehouse-from-output', prefix: 'changes/' });
    expect(target.audit).toEqual({ bucket: 'staging-audit-from-output', prefix: 'audit/' });
    expect(target.s3).toBe(clients.s3);
    expect(clients.mocks.cloudFormation.commandCalls(ListStackResourcesCommand)).toHaveLength(0);
  });

  it('finds the buckets among the data stack resources (every page) when it has no outputs for them', async () => {
    const clients = mockedAws({ outputs: false });
    const target = await awsTarget(staging, clients, { redisUrl: 'rediss://c:6379' });
    expect(target.warehouse?.bucket).toBe('staging-warehouse-from-resource');
    expect(target.audit?.bucket).toBe('staging-audit-from-resource');
  });

  it('--warehouse-bucket and --audit-bucket need no CloudFormation (a host in the VPC has no endpoint for it)', async () => {
    const clients = mockedAws();
    clients.mocks.cloudFormation.reset();
    clients.mocks.cloudFormation.rejects(new Error('connect ETIMEDOUT'));
    const target = await awsTarget(staging, clients, {
      redisUrl: 'rediss://c:6379',
      warehouseBucket: 'w',
      auditBucket: 'a',
    });
    expect([target.warehouse?.bucket, target.audit?.bucket]).toEqual(['w', 'a']);
  });

  it.each([
    [
      'CloudFormation unreachable',
      (c: ReturnType<typeof mockedAws>) => {
        c.mocks.cloudFormation.reset();
        c.mocks.cloudFormation.rejects(new Error('connect ETIMEDOUT'));
      },
      'name them with --warehouse-bucket and --audit-bucket',
    ],
    [
      'a secret that is not JSON',
      (c: ReturnType<typeof mockedAws>) =>
        c.mocks.secrets.on(GetSecretValueCommand).resolves({ SecretString: 'hunter2' }),
      'is not JSON with username and password',
    ],
    [
      'a secret that cannot be read',
      (c: ReturnType<typeof mockedAws>) =>
        c.mocks.secrets
          .on(GetSecretValueCommand)
          .rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' })),
      'cannot read the credentials of source orders: denied',
    ],
  ])('%s: a setup error saying what to do', async (_, breakIt, message) => {
    const clients = mockedAws();
    breakIt(clients);
    const failure = awsTarget(staging, clients, { redisUrl: 'rediss://c:6379' });
    await expect(failure).rejects.toThrow(SmokeSetupError);
    await expect(failure).rejects.toThrow(message);
    await expect(failure).rejects.not.toThrow('hunter2');
  });

  it('a source that writes no heartbeat table: a setup error', async () => {
    const withoutHeartbeats = {
      ...staging,
      sources: staging.sources.map((s) => (s.name === 'orders' ? { ...s, heartbeatTable: false as const } : s)),
    };
    await expect(awsTarget(withoutHeartbeats, mockedAws(), { redisUrl: 'rediss://c:6379' })).rejects.toThrow(
      'source orders writes no heartbeat table',
    );
  });

  it('writes to PostgreSQL sources only, and checks only the sinks whose lanes take the source', async () => {
    await expect(awsTarget(staging, mockedAws(), { redisUrl: 'rediss://c:6379', source: 'inventory' })).rejects.toThrow(
      'source inventory is mysql',
    );
    const auditElsewhere = {
      ...staging,
      lanes: { ...staging.lanes, audit: { ...staging.lanes.audit, sources: ['inventory'] } },
    };
    const target = await awsTarget(auditElsewhere, mockedAws(), { redisUrl: 'rediss://c:6379' });
    expect(target.audit).toBeNull();
    expect(target.warehouse).not.toBeNull();
    expect(target.cache).not.toBeNull();
  });

  it("the default prefixes are the lanes' and the CDK app's", async () => {
    const { DEFAULT_AUDIT_PREFIX, DEFAULT_WAREHOUSE_PREFIX } = await import('../../lib/stacks/data-stack');
    expect(DEFAULT_PREFIXES.warehouse).toBe(DEFAULT_WAREHOUSE_PREFIX);
    expect(DEFAULT_PREFIXES.audit).toBe(DEFAULT_AUDIT_PREFIX);
    expect(DEFAULT_PREFIXES.cache).toBe(z.parse(LaneEnvSchemas.cache.shape.CACHE_KEY_PREFIX, undefined));
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** A canary writer that only records what it was asked. */
function fakeWriter(calls: string[]): CanaryWriter {
  return {
    table: 'public.cdc_heartbeat',
    async insert() {
      calls.push('insert');
      return { id: -5, committedAt: Date.now() };
    },
    async delete(id) {
      calls.push(`delete ${id}`);
      return { committedAt: Date.now() };
    },
    async close() {},
  };
}

/** A probe that answers from a function of the canary and how often it was asked. */
function probe(sink: SinkName, calls: string[], answer: (canary: Canary, asked: number) => boolean): SinkProbe {
  let asked = 0;
  return {
    sink,
    async start(table) {
      calls.push(`start ${sink} ${table}`);
    },
    async seen(canary) {
      asked++;
      return answer(canary, asked);
    },
    async close() {},
  };
}

describe('the waiting logic over the sink probes', () => {
  it('starts every probe, inserts, waits for each, deletes, waits for the delete; latency per sink', async () => {
    // Arrange
    const calls: string[] = [];
    const probes = [
      probe('cache', calls, () => true),
      probe('warehouse', calls, (_, asked) => asked >= 3),
      probe('audit', calls, (c) => c.op === 'c' || c.table === 'pg.public.cdc_heartbeat'),
    ];

    // Act
    const result = await smoke(
      { writer: fakeWriter(calls), probes, table: 'pg.public.cdc_heartbeat' },
      { timeoutMs: 2_000, pollMs: 10 },
    );

    // Assert
    expect(calls).toEqual([
      'start cache pg.public.cdc_heartbeat',
      'start warehouse pg.public.cdc_heartbeat',
      'start audit pg.public.cdc_heartbeat',
      'insert',
      'delete -5',
    ]);
    expect(result.ok).toBe(true);
    expect(result.canaryId).toBe(-5);
    expect(result.sinks.warehouse?.latencyMs).toBeGreaterThanOrEqual(20);
    expect(Object.values(result.deleted ?? {}).every((o) => o.seen)).toBe(true);
  });

  it('a probe that fails now and then still counts when it sees the canary; one that always fails says why', async () => {
    // Arrange
    const calls: string[] = [];
    const flaky = probe('cache', calls, (_, asked) => {
      if (asked < 3) throw new Error('ECONNRESET');
      return true;
    });
    const denied = probe('audit', calls, () => {
      throw new Error('Access Denied');
    });

    // Act
    const result = await smoke(
      { writer: fakeWriter(calls), probes: [flaky, denied], table: 't' },
      { timeoutMs: 300, pollMs: 10 },
    );

    // Assert: the canary is deleted all the same, and the delete not waited for
    expect(result.ok).toBe(false);
    expect(result.sinks.cache).toEqual({ seen: true, latencyMs: expect.any(Number) });
    expect(result.sinks.audit).toEqual({ seen: false, latencyMs: null, lastError: 'Access Denied' });
    expect(result.deleted).toBeNull();
    expect(calls.at(-1)).toBe('delete -5');
  });

  it('a sink that never shows the delete fails the smoke test', async () => {
    const calls: string[] = [];
    const result = await smoke(
      { writer: fakeWriter(calls), probes: [probe('cache', calls, (c) => c.op === 'c')], table: 't' },
      { timeoutMs: 200, pollMs: 10 },
    );
    expect(result.ok).toBe(false);
    expect(result.sinks.cache?.seen).toBe(true);
    expect(result.deleted).toEqual({ cache: { seen: false, latencyMs: null } });
  });

  it('interrupted: stops waiting at once and still deletes the canary', async () => {
    // Arrange
    const calls: string[] = [];
    const interrupt = new AbortController();
    setTimeout(() => interrupt.abort(), 100);
    const started = Date.now();

    // Act
    const result = await smoke(
      { writer: fakeWriter(calls), probes: [probe('warehouse', calls, () => false)], table: 't' },
      { timeoutMs: 30_000, pollMs: 1_000, signal: interrupt.signal },
    );

    // Assert
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(result.ok).toBe(false);
    expect(calls.at(-1)).toBe('delete -5');
  });

  it('a probe that cannot start: a setup error, and nothing is written', async () => {
    const calls: string[] = [];
    const broken: SinkProbe = {
      sink: 'warehouse',
      start: async () => {
        throw new Error('NoSuchBucket');
      },
      seen: async () => true,
      close: async () => undefined,
    };
    const failure = smoke({ writer: fakeWriter(calls), probes: [broken], table: 't' }, { timeoutMs: 100 });
    await expect(failure).rejects.toThrow('cannot read the warehouse: NoSuchBucket');
    expect(calls).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('the canary writer', () => {
  const { db, sql } = usePostgres();

  it('fills every timestamp column with now() (ts locally, last_heartbeat as deployed) and takes a fresh negative id', async () => {
    // Arrange: the heartbeat table as docs/deploy.md creates it, with the connector's row 1
    const schema = unique('smoke');
    await sql().query(`CREATE SCHEMA ${schema}`);
    await sql().query(`CREATE TABLE ${schema}.cdc_heartbeat (id int PRIMARY KEY, last_heartbeat timestamptz NOT NULL)`);
    await sql().query(`INSERT INTO ${schema}.cdc_heartbeat VALUES (1, now())`);
    const writer = await openCanaryWriter(db().url, `${schema}.cdc_heartbeat`);

    try {
      // Act
      const first = await writer.insert();
      const second = await writer.insert();
      const rows = await sql().query(`SELECT id, last_heartbeat FROM ${schema}.cdc_heartbeat WHERE id < 0`);
      await writer.delete(first.id);
      await writer.delete(second.id);
      const left = await sql().query(`SELECT id FROM ${schema}.cdc_heartbeat ORDER BY id`);

      // Assert
      expect(first.id).toBeLessThan(0);
      expect(second.id).not.toBe(first.id);
      expect(rows.rows).toHaveLength(2);
      expect(rows.rows.every((r) => r.last_heartbeat instanceof Date)).toBe(true);
      expect(left.rows).toEqual([{ id: 1 }]);
    } finally {
      await writer.close();
    }
  });

  it.each([
    ['a missing table', () => 'none.cdc_heartbeat', 'does not exist'],
    ['a bare name', () => 'cdc_heartbeat', 'must be named schema.table'],
    [
      'another primary key',
      (s: string) => `CREATE TABLE ${s}.t (source text, id int, ts timestamptz, PRIMARY KEY (source, id))`,
      'must have the primary key (id), not (source, id)',
    ],
    [
      'a NOT NULL column it cannot fill',
      (s: string) => `CREATE TABLE ${s}.t (id int PRIMARY KEY, ts timestamptz NOT NULL, host text NOT NULL)`,
      'NOT NULL columns the canary cannot fill: host',
    ],
  ])('refuses %s before writing anything', async (_, make, message) => {
    const schema = unique('smoke');
    await sql().query(`CREATE SCHEMA ${schema}`);
    const ddl = make(schema);
    const table = ddl.startsWith('CREATE') ? `${schema}.t` : ddl;
    if (ddl.startsWith('CREATE')) await sql().query(ddl);
    await expect(openCanaryWriter(db().url, table)).rejects.toThrow(message);
  });

  it('refuses a user that may insert but not delete (the grants docs/deploy.md gives the connector user)', async () => {
    // Arrange
    const schema = unique('smoke');
    const role = unique('smoke_user');
    await sql().query(`CREATE SCHEMA ${schema}`);
    await sql().query(`CREATE TABLE ${schema}.cdc_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)`);
    await sql().query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    await sql().query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
    await sql().query(`GRANT SELECT, INSERT, UPDATE ON ${schema}.cdc_heartbeat TO ${role}`);
    const url = new URL(db().url);
    url.username = role;
    url.password = 'pw';

    // Act
    const failure = openCanaryWriter(url.toString(), `${schema}.cdc_heartbeat`);

    // Assert
    await expect(failure).rejects.toThrow(`may not delete rows of ${schema}.cdc_heartbeat: GRANT DELETE`);
    const { rows } = await sql().query(`SELECT count(*)::int AS n FROM ${schema}.cdc_heartbeat`);
    expect(rows[0].n).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe.each(['memory', 'files'] as const)('new objects under a prefix, local S3 (%s)', (kind) => {
  let services: LocalServices;
  let s3: S3Client;
  const bucket = 'cdc-sync-local-warehouse';
  beforeAll(async () => {
    services = await startLocalServices({ s3: kind, redis: null });
    s3 = services.clients.s3;
  });
  afterAll(async () => {
    await services?.stop();
  });

  const put = (key: string, body = 'x') => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  const pad = (n: number) => String(n).padStart(12, '0');

  it('finds the last numbered object of a stream by search, past unnumbered ones; none in an empty stream', async () => {
    // Arrange: sparse numbers, a redrive file that sorts after them, and a neighbouring stream with higher numbers
    const stream = `${unique('search')}/t+0+`;
    for (const n of [0, 3, 17, 18, 1_000, 123_456]) await put(`${stream}${pad(n)}+abc.parquet`);
    await put(`${stream}redrive+${pad(5)}.parquet`);
    await put(`${stream.replace('+0+', '+1+')}${pad(999_999)}.parquet`);

    // Act
    const last = await lastNumber(s3, bucket, { prefix: stream, width: 12 });
    const none = await lastNumber(s3, bucket, { prefix: `${stream}nothing/`, width: 12 });

    // Assert
    expect(last).toBe(123_456);
    expect(none).toBeUndefined();
  });

  it('lists the sub-prefixes one level down (topics, then partitions: 1 and 10 apart), past keys right under it', async () => {
    // Arrange
    const root = `${unique('folders')}/date=2026-12-03/`;
    for (const key of ['pg.a+0+1', 'pg.a+0+2', 'pg.a+1+1', 'pg.a+10+1', 'pg.a+2+1', 'pg.b+0+1', 'stray.parquet']) {
      await put(`${root}${key}`);
    }

    // Act
    const topics = await subPrefixes(s3, bucket, root, '+');
    const partitions = await subPrefixes(s3, bucket, `${root}pg.a+`, '+');

    // Assert
    expect(topics).toEqual([`${root}pg.a+`, `${root}pg.b+`]);
    expect(partitions).toEqual(['0', '1', '10', '2'].map((p) => `${root}pg.a+${p}+`));
  });

  it('reports only what was written or rewritten after the baseline, and new streams whole', async () => {
    // Arrange: a chain of 30 objects before the baseline
    const root = `${unique('feed')}/`;
    const chain = (partition: number) => `${root}${partition}/1700000000000/`;
    for (let seq = 0; seq < 300; seq += 10) await put(`${chain(0)}${pad(seq)}.ndjson.gz`);
    const streams = async () =>
      (await subPrefixes(s3, bucket, root, '/')).map((p) => ({ prefix: `${p}1700000000000/`, width: 12 }));
    const feed = new NewObjects(s3, bucket, streams);
    await feed.baseline();
    const before = await feed.unread();

    // Act: a new object, the last old one rewritten (a retried batch that took more records), a new partition
    await put(`${chain(0)}${pad(300)}.ndjson.gz`);
    await put(`${chain(0)}${pad(290)}.ndjson.gz`, 'more');
    await put(`${chain(1)}${pad(0)}.ndjson.gz`);
    const after = await feed.unread();
    for (const o of after) feed.read(o);
    const again = await feed.unread();

    // Assert
    expect(before).toEqual([]);
    expect(after.map((o) => o.key).sort()).toEqual([
      `${chain(0)}${pad(290)}.ndjson.gz`,
      `${chain(0)}${pad(300)}.ndjson.gz`,
      `${chain(1)}${pad(0)}.ndjson.gz`,
    ]);
    expect(again).toEqual([]);
  });
});
