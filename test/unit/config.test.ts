import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../functions/core/errors';
import { loadLaneEnv, loadSignallerEnv } from '../../functions/shared/config';

const base = {
  DEDUPE_TABLE_NAME: 'dedupe',
  DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/dlq',
  DLQ_PAYLOAD_BUCKET: 'dead-letters',
};

describe('loadLaneEnv', () => {
  it('parses a complete environment with defaults', () => {
    const env = loadLaneEnv('warehouse', { ...base, WAREHOUSE_BUCKET: 'lake' });
    expect(env).toMatchObject({
      WAREHOUSE_BUCKET: 'lake',
      WAREHOUSE_PREFIX: 'changes/',
      REPORT_BATCH_ITEM_FAILURES: true,
      MAX_RECORD_BYTES: 1_048_576,
    });
  });

  it('parks a poison key after 5 failed deliveries by default, never with PARK_AFTER_ATTEMPTS 0', () => {
    const cache = { ...base, REDIS_URL: 'redis://127.0.0.1:6379' };
    expect(loadLaneEnv('cache', cache).PARK_AFTER_ATTEMPTS).toBe(5);
    expect(loadLaneEnv('cache', { ...cache, PARK_AFTER_ATTEMPTS: '0' }).PARK_AFTER_ATTEMPTS).toBe(0);
    expect(() => loadLaneEnv('cache', { ...cache, PARK_AFTER_ATTEMPTS: '-1' })).toThrow(/PARK_AFTER_ATTEMPTS/);
    expect(() => loadLaneEnv('cache', { ...cache, PARK_AFTER_ATTEMPTS: '2.5' })).toThrow(/PARK_AFTER_ATTEMPTS/);
  });

  it('defaults the schema change policy to auto and leaves the signals queue unset', () => {
    const env = loadLaneEnv('audit', { ...base, AUDIT_BUCKET: 'audit' });
    expect(env).toMatchObject({ SCHEMA_CHANGE_POLICY: { default: 'auto' } });
    expect(env.SIGNAL_QUEUE_URL).toBeUndefined();
  });

  it('parses a per-table schema change policy and the signals queue', () => {
    const queueUrl = 'https://sqs.eu-west-1.amazonaws.com/111122223333/cdc-sync-dev-signals.fifo';
    const env = loadLaneEnv('audit', {
      ...base,
      AUDIT_BUCKET: 'audit',
      SCHEMA_CHANGE_POLICY: '{"default":"alarm","tables":{"public.big":"off"}}',
      SIGNAL_QUEUE_URL: queueUrl,
    });
    expect(env).toMatchObject({
      SCHEMA_CHANGE_POLICY: { default: 'alarm', tables: { 'public.big': 'off' } },
      SIGNAL_QUEUE_URL: queueUrl,
    });
  });

  it('keeps the Kafka signal channel out of the lane configuration (the signaller function has it)', () => {
    const env = loadLaneEnv('audit', {
      ...base,
      AUDIT_BUCKET: 'audit',
      SIGNAL_TOPICS: '{"orders":"orders.signals"}',
      SIGNAL_BOOTSTRAP_SERVERS: 'b-1.msk:9098',
    });
    expect(env).not.toHaveProperty('SIGNAL_TOPICS');
    expect(env).not.toHaveProperty('SIGNAL_BOOTSTRAP_SERVERS');
  });

  it('parses AVRO_REGISTRY for a Glue and a Confluent registry, and leaves it unset by default', () => {
    const glue = loadLaneEnv('audit', {
      ...base,
      AUDIT_BUCKET: 'audit',
      AVRO_REGISTRY: '{"kind":"glue","registryName":"cdc-sync-staging"}',
    });
    const confluent = loadLaneEnv('audit', {
      ...base,
      AUDIT_BUCKET: 'audit',
      AVRO_REGISTRY: '{"kind":"confluent","url":"http://127.0.0.1:8081"}',
    });
    const none = loadLaneEnv('audit', { ...base, AUDIT_BUCKET: 'audit' });
    expect(glue.AVRO_REGISTRY).toEqual({ kind: 'glue', registryName: 'cdc-sync-staging' });
    expect(confluent.AVRO_REGISTRY).toEqual({ kind: 'confluent', url: 'http://127.0.0.1:8081' });
    expect(none.AVRO_REGISTRY).toBeUndefined();
  });

  it.each([
    ['an unknown kind', '{"kind":"apicurio","url":"http://x"}'],
    ['a Glue registry without its name', '{"kind":"glue"}'],
    ['a Confluent registry without a URL', '{"kind":"confluent","url":"not a url"}'],
    ['text that is not JSON', 'glue'],
  ])('rejects AVRO_REGISTRY with %s, naming the variable', (_, value) => {
    expect(() => loadLaneEnv('audit', { ...base, AUDIT_BUCKET: 'audit', AVRO_REGISTRY: value })).toThrow(
      /AVRO_REGISTRY/,
    );
  });

  it('names every missing variable', () => {
    expect(() => loadLaneEnv('cache', { DLQ_URL: base.DLQ_URL })).toThrow(ConfigError);
    expect(() => loadLaneEnv('cache', { DLQ_URL: base.DLQ_URL })).toThrow(
      /DEDUPE_TABLE_NAME is missing.*DLQ_PAYLOAD_BUCKET is missing.*REDIS_URL is missing/,
    );
  });

  it.each([
    ['REDIS_URL', 'http://cache:6379', /REDIS_URL must start with redis/],
    ['REPORT_BATCH_ITEM_FAILURES', 'yes', /REPORT_BATCH_ITEM_FAILURES/],
    ['TABLE_RULES', '{not json', /TABLE_RULES is not valid JSON/],
    ['TABLE_RULES', '{"columns":{"t":{"pii":{"email":"rot13"}}}}', /TABLE_RULES/],
    ['MAX_RECORD_BYTES', '-1', /MAX_RECORD_BYTES/],
    ['SCHEMA_CHANGE_POLICY', '{"default":"sometimes"}', /SCHEMA_CHANGE_POLICY/],
    ['SCHEMA_CHANGE_POLICY', '{"tables":{"public.x":"never"}}', /SCHEMA_CHANGE_POLICY/],
    ['SIGNAL_QUEUE_URL', 'signals', /SIGNAL_QUEUE_URL/],
  ])('rejects a bad %s', (name, value, message) => {
    expect(() => loadLaneEnv('cache', { ...base, REDIS_URL: 'redis://x:6379', [name]: value })).toThrow(message);
  });
});

describe('loadSignallerEnv', () => {
  it('parses the signal topics by prefix, the brokers, and defaults to MSK IAM auth', () => {
    const env = loadSignallerEnv({
      SIGNAL_TOPICS: '{"orders":"orders.signals","inventory":"inventory.signals"}',
      SIGNAL_BOOTSTRAP_SERVERS: 'b-1.msk:9098,b-2.msk:9098',
    });
    expect(env).toEqual({
      SIGNAL_TOPICS: { orders: 'orders.signals', inventory: 'inventory.signals' },
      SIGNAL_BOOTSTRAP_SERVERS: 'b-1.msk:9098,b-2.msk:9098',
      SIGNAL_AUTH: 'aws-iam',
    });
  });

  it('names every missing variable', () => {
    expect(() => loadSignallerEnv({})).toThrow(ConfigError);
    expect(() => loadSignallerEnv({})).toThrow(
      /signaller configuration: SIGNAL_TOPICS is missing; SIGNAL_BOOTSTRAP_SERVERS is missing/,
    );
  });

  it.each([
    ['SIGNAL_AUTH', 'plain', /SIGNAL_AUTH/],
    ['SIGNAL_TOPICS', '["orders.signals"]', /SIGNAL_TOPICS/],
    ['SIGNAL_TOPICS', '{"orders":""}', /SIGNAL_TOPICS/],
    ['SIGNAL_TOPICS', '{orders', /SIGNAL_TOPICS is not valid JSON/],
  ])('rejects a bad %s', (name, value, message) => {
    const env = { SIGNAL_TOPICS: '{"orders":"orders.signals"}', SIGNAL_BOOTSTRAP_SERVERS: 'b-1:9098', [name]: value };
    expect(() => loadSignallerEnv(env)).toThrow(message);
  });
});
