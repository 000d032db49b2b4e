import { describe, expect, it } from 'vitest';
import { createApp } from '../../lib/app';
import {
  ConfigValidationError,
  consumerGroupId,
  DEFAULT_ENVIRONMENT,
  dataTopicName,
  ENVIRONMENTS,
  type EnvironmentConfig,
  environmentConfig,
  heartbeatTableName,
  heartbeatTableTopicName,
  laneTopics,
  notificationTopicName,
  signallingParameterName,
  signalTableName,
  signalTopicName,
  UnknownEnvironmentError,
  validateConfig,
} from '../../lib/config';
import { type Mutable, variant } from './support';

const dev = environmentConfig('dev');
const prod = environmentConfig('prod');

describe('environment selection', () => {
  it('defaults to dev', () => {
    expect(DEFAULT_ENVIRONMENT).toBe('dev');
    expect(environmentConfig().name).toBe('dev');
  });

  it('selects the environment named by -c env=<name>', () => {
    const { stage } = createApp({ context: { env: 'staging', 'aws:cdk:bundling-stacks': [] }, nag: false });
    expect(stage.network.stackName).toBe('cdc-sync-staging-network');
    expect(stage.network.account).toBe(environmentConfig('staging').account);
  });

  it('rejects an unknown environment and lists the valid ones', () => {
    expect(() => environmentConfig('qa')).toThrow(UnknownEnvironmentError);
    expect(() => environmentConfig('qa')).toThrow(/Unknown environment 'qa'. Valid environments: dev, staging, prod/);
  });

  it('fails the app for an unknown -c env', () => {
    expect(() => createApp({ context: { env: 'qa' }, nag: false })).toThrow(/Valid environments: dev, staging, prod/);
  });

  it.each(Object.keys(ENVIRONMENTS))('ships a valid configuration for %s', (name) => {
    expect(validateConfig(environmentConfig(name))).toEqual([]);
  });
});

type Breakage = (draft: Mutable<EnvironmentConfig>) => void;
const mysql = (draft: Mutable<EnvironmentConfig>) => {
  const source = draft.sources.find((s) => s.engine === 'mysql');
  if (source === undefined) throw new Error('dev has a MySQL source');
  return source;
};
const postgres = (draft: Mutable<EnvironmentConfig>) => {
  const source = draft.sources.find((s) => s.engine === 'postgresql');
  if (source === undefined || source.engine !== 'postgresql') throw new Error('dev has a PostgreSQL source');
  return source;
};

describe('synth-time validation', () => {
  it.each<[string, Breakage, RegExp]>([
    [
      'Debezium MySQL with autoscaled capacity',
      (d) => {
        mysql(d).capacity = { mode: 'autoscaled', minWorkerCount: 1, maxWorkerCount: 2, mcuCount: 1 };
      },
      /source 'inventory': Debezium mysql does not work with autoscaled capacity/,
    ],
    [
      'Debezium MySQL with tasks.max > 1',
      (d) => {
        mysql(d).tasksMax = 2;
      },
      /source 'inventory': Debezium mysql supports exactly one task; tasksMax is 2/,
    ],
    [
      'a PostgreSQL source without heartbeat.interval.ms',
      (d) => {
        postgres(d).heartbeatIntervalMs = undefined;
      },
      /source 'orders': PostgreSQL sources need heartbeatIntervalMs/,
    ],
    [
      'a storage autoscaling ceiling below the initial volume',
      (d) => {
        if (d.msk.mode === 'provisioned') d.msk.maxEbsVolumeGiB = d.msk.ebsVolumeGiB - 1;
      },
      /msk.maxEbsVolumeGiB 19 must be between ebsVolumeGiB \(20\) and 16384/,
    ],
    [
      'a heartbeat table without its schema',
      (d) => {
        postgres(d).heartbeatTable = 'cdc_heartbeat';
      },
      /source 'orders': heartbeatTable 'cdc_heartbeat' must be '<schema\|database>.<table>'/,
    ],
    [
      'a heartbeat table without heartbeats (MySQL: nothing else requires them)',
      (d) => {
        mysql(d).heartbeatIntervalMs = undefined;
      },
      /source 'inventory': heartbeat table 'inventory.cdc_heartbeat' needs heartbeatIntervalMs .*set heartbeatTable: false to do without/,
    ],
    [
      'the signal table as the heartbeat table',
      (d) => {
        mysql(d).heartbeatTable = 'inventory.debezium_signal';
      },
      /source 'inventory': heartbeatTable 'inventory.debezium_signal' is the signal table/,
    ],
    [
      'a listed table that is also the heartbeat table (two topics of one name)',
      (d) => {
        mysql(d).tables.push({ name: 'inventory.cdc_heartbeat', partitions: 1 });
      },
      /topic 'inventory.inventory.cdc_heartbeat' would be used by more than one/,
    ],
    [
      'a freshness bound no longer than the heartbeat interval',
      (d) => {
        mysql(d).freshnessBoundSeconds = 10;
      },
      /source 'inventory': freshnessBoundSeconds 10 must exceed heartbeatIntervalMs \(10 s\) plus the longest batching window of the lanes that read it \(5 s\)/,
    ],
    [
      "a freshness bound within the heartbeat interval plus the warehouse lane's batching window",
      (d) => {
        postgres(d).freshnessBoundSeconds = 15;
      },
      /source 'orders': freshnessBoundSeconds 15 must exceed heartbeatIntervalMs \(10 s\) plus the longest batching window of the lanes that read it \(5 s\)/,
    ],
    [
      'a freshness bound of 0',
      (d) => {
        postgres(d).freshnessBoundSeconds = 0;
      },
      /source 'orders': freshnessBoundSeconds 0 must be more than 0 and at most 86400/,
    ],
    [
      'a freshness bound longer than a day (CloudWatch evaluates at most 1440 one-minute periods)',
      (d) => {
        postgres(d).freshnessBoundSeconds = 86_401;
      },
      /source 'orders': freshnessBoundSeconds 86401 must be more than 0 and at most 86400/,
    ],
    [
      'a lane parking a poison key only after the event source mapping gave its batch up',
      (d) => {
        d.lanes.cache.parkAfterAttempts = 5;
      },
      /lane 'cache': parkAfterAttempts 5 exceeds retryAttempts \+ 1 \(4\)/,
    ],
    [
      'a negative parkAfterAttempts',
      (d) => {
        d.lanes.warehouse.parkAfterAttempts = -1;
      },
      /lane 'warehouse': parkAfterAttempts must be a whole number, 0 \(never park\) or more/,
    ],
    [
      'a lane without a DLQ',
      (d) => {
        d.lanes.audit.deadLetterQueue = undefined;
      },
      /lane 'audit' has no deadLetterQueue/,
    ],
    [
      'a latency SLO with a batching window > 0',
      (d) => {
        d.lanes.cache.maxBatchingWindowSeconds = 1;
      },
      /lane 'cache' has a latency SLO of 2000 ms but maxBatchingWindowSeconds is 1/,
    ],
    [
      'duplicate topic prefixes',
      (d) => {
        mysql(d).topicPrefix = 'orders';
      },
      /topicPrefix 'orders' is used by more than one source/,
    ],
    [
      'duplicate slot names',
      (d) => {
        const copy = structuredClone(postgres(d));
        d.sources.push({ ...copy, name: 'orders-replica', topicPrefix: 'orders_replica' });
      },
      /slotName 'cdc_sync_dev_orders' is used by more than one PostgreSQL source/,
    ],
    [
      'a broker count that is not a multiple of 3',
      (d) => {
        if (d.msk.mode === 'provisioned') d.msk.brokerCount = 4;
      },
      /msk.brokerCount 4 must be a positive multiple of 3/,
    ],
    [
      "schema capture with a 'filtered' publication (it only publishes the tables present at connector start)",
      (d) => {
        postgres(d).publicationAutocreateMode = 'filtered';
      },
      /captureSchemas needs a publication that covers future tables/,
    ],
    [
      'an unknown schema change policy',
      (d) => {
        d.schemaChanges = { default: 'auto', tables: { 'public.orders': 'sometimes' as 'auto' } };
      },
      /schemaChanges.tables\['public.orders'\] 'sometimes' must be one of auto, alarm, off/,
    ],
    [
      'a schema change policy for a table not named as a data collection',
      (d) => {
        d.schemaChanges = { default: 'off', tables: { orders: 'alarm' } };
      },
      /schemaChanges.tables: 'orders' must be a Debezium data collection/,
    ],
    [
      'an incremental snapshot chunk size of 0',
      (d) => {
        postgres(d).incrementalSnapshotChunkSize = 0;
      },
      /incrementalSnapshotChunkSize must be a positive integer/,
    ],
    [
      'a catch-all topic of 0 partitions',
      (d) => {
        (postgres(d) as { unlistedTopicPartitions?: number }).unlistedTopicPartitions = 0;
      },
      /unlistedTopicPartitions must be a positive integer/,
    ],
    [
      "a table whose topic is another source's catch-all topic",
      (d) => {
        mysql(d).topicPrefix = 'orders.public';
        postgres(d).tables.push({ name: 'public.unlisted', partitions: 1 });
      },
      /topic 'orders.public.unlisted' would be used by more than one/,
    ],
    [
      'a table whose topic is the signal topic of its source',
      (d) => {
        mysql(d).topicPrefix = 'orders.public';
        postgres(d).tables.push({ name: 'public.signals', partitions: 1 });
      },
      /topic 'orders.public.signals' would be used by more than one/,
    ],
    [
      'a lane timeout above the Kafka limit',
      (d) => {
        d.lanes.warehouse.timeoutSeconds = 900;
      },
      /lane 'warehouse': timeoutSeconds must be 1–840/,
    ],
  ])('rejects %s', (_case, breakIt, message) => {
    const config = variant(dev, breakIt);

    expect(validateConfig(config).join('\n')).toMatch(message);
    expect(() => createApp({ config, nag: false, context: { 'aws:cdk:bundling-stacks': [] } })).toThrow(
      ConfigValidationError,
    );
  });

  it('accepts a freshness bound just above the heartbeat interval plus the batching window', () => {
    const config = variant(dev, (d) => {
      postgres(d).freshnessBoundSeconds = 16;
    });

    expect(validateConfig(config)).toEqual([]);
  });

  it('lets a source without a heartbeat table (heartbeatTable: false) do without heartbeats', () => {
    const config = variant(dev, (d) => {
      mysql(d).heartbeatTable = false;
      mysql(d).heartbeatIntervalMs = undefined;
    });

    expect(validateConfig(config)).toEqual([]);
  });

  it('lists every problem of a configuration at once', () => {
    const config = variant(dev, (d) => {
      mysql(d).tasksMax = 3;
      d.lanes.cache.deadLetterQueue = undefined;
    });

    expect(() => createApp({ config, nag: false })).toThrow(/tasksMax is 3[\s\S]*lane 'cache' has no deadLetterQueue/);
  });
});

describe('derived names', () => {
  it('names data topics the way Debezium does for each connector', () => {
    const [orders, inventory, billing] = prod.sources;
    expect(orders && dataTopicName(orders, { name: 'public.orders', partitions: 1 })).toBe('orders.public.orders');
    expect(inventory && dataTopicName(inventory, { name: 'inventory.stock', partitions: 1 })).toBe(
      'inventory.inventory.stock',
    );
    expect(billing && dataTopicName(billing, { name: 'dbo.invoices', partitions: 1 })).toBe(
      'billing.Billing.dbo.invoices',
    );
  });

  it.each(['warehouse', 'cache', 'audit'] as const)(
    "subscribes the %s lane to data, catch-all, heartbeat-table and schema-change topics, never Debezium's heartbeat, transaction, history or signals",
    (lane) => {
      const topics = laneTopics(dev, lane).map((t) => `${t.kind}:${t.topicName}`);
      // PostgreSQL has no schema-change topic (logical decoding carries no DDL); MySQL's is the bare prefix.
      expect(topics).toEqual([
        'data:orders.public.orders',
        'data:orders.public.order_lines',
        'unlisted:orders.unlisted',
        'heartbeat:orders.public.cdc_heartbeat',
        'data:inventory.inventory.stock',
        'unlisted:inventory.unlisted',
        'heartbeat:inventory.inventory.cdc_heartbeat',
        'schema-changes:inventory',
      ]);
    },
  );

  it("gives every source a heartbeat table in its signal table's schema by default, none when turned off", () => {
    const [orders, inventory, billing] = prod.sources;
    if (orders === undefined || inventory === undefined || billing === undefined) throw new Error('prod has 3 sources');
    expect([orders, inventory, billing].map(heartbeatTableName)).toEqual([
      'public.cdc_heartbeat',
      'inventory.cdc_heartbeat',
      'dbo.cdc_heartbeat',
    ]);
    expect([orders, inventory, billing].map(heartbeatTableTopicName)).toEqual([
      'orders.public.cdc_heartbeat',
      'inventory.inventory.cdc_heartbeat',
      'billing.Billing.dbo.cdc_heartbeat',
    ]);
    const off = { ...billing, heartbeatTable: false as const };
    expect(heartbeatTableName(off)).toBeUndefined();
    expect(heartbeatTableTopicName(off)).toBeUndefined();
    expect(heartbeatTableName({ ...orders, heartbeatTable: 'cdc.beat' })).toBe('cdc.beat');
  });

  it('subscribes no lane to a heartbeat topic for a source whose heartbeat table is off', () => {
    const config = variant(dev, (d) => {
      mysql(d).heartbeatTable = false;
    });
    expect(
      laneTopics(config, 'cache')
        .filter((t) => t.kind === 'heartbeat')
        .map((t) => t.topicName),
    ).toEqual(['orders.public.cdc_heartbeat']);
  });

  it('names one signal and one notification topic per source, and a default signal table', () => {
    const [orders, inventory, billing] = prod.sources;
    if (orders === undefined || inventory === undefined || billing === undefined) throw new Error('prod has 3 sources');
    expect([signalTopicName(orders), notificationTopicName(orders)]).toEqual([
      'orders.signals',
      'orders.notifications',
    ]);
    expect(signalTableName(orders)).toBe('public.debezium_signal');
    expect(signalTableName(inventory)).toBe('inventory.debezium_signal');
    expect(signalTableName(billing)).toBe('dbo.debezium_signal');
    expect(signalTableName({ ...orders, signalTable: 'cdc.signal' })).toBe('cdc.signal');
    expect(signallingParameterName(prod)).toBe('/cdc-sync/prod/signalling');
  });

  it('gives every lane and topic its own consumer group, within 200 characters', () => {
    expect(consumerGroupId(dev, 'cache', 'orders.public.orders')).toBe('cdc-dev-cache-orders.public.orders');
    const long = consumerGroupId(dev, 'warehouse', `orders.public.${'x'.repeat(240)}`);
    expect(long).toHaveLength(200);
    expect(long.startsWith('cdc-dev-warehouse-orders.public.')).toBe(true);
  });
});
