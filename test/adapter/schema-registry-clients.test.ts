import {
  EntityNotFoundException,
  GetSchemaVersionCommand,
  GlueClient,
  InternalServiceException,
} from '@aws-sdk/client-glue';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfluentRegistryClient } from '../../functions/adapters/confluent-registry-client';
import { GlueRegistryClient } from '../../functions/adapters/glue-registry-client';
import { startLocalRegistry } from '../../tools/local/registry/server';

const SCHEMA = '{"type":"record","name":"K","fields":[{"name":"id","type":"int"}]}';

describe('ConfluentRegistryClient against the local registry', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  it('fetches a registered schema by id', async () => {
    // Arrange
    const registry = await startLocalRegistry();
    stops.push(registry.close);
    const { id } = await registry.register('t-key', SCHEMA);
    // Act
    const text = await new ConfluentRegistryClient({ url: registry.url }).getSchema(String(id));
    // Assert
    expect(JSON.parse(text)).toEqual(JSON.parse(SCHEMA));
  });

  it('says an unknown id is not retryable', async () => {
    // Arrange
    const registry = await startLocalRegistry();
    stops.push(registry.close);
    // Act
    const error = await new ConfluentRegistryClient({ url: registry.url }).getSchema('999').catch((e: unknown) => e);
    // Assert
    expect(error).toMatchObject({ code: 'UNKNOWN_SCHEMA_ID', retryable: false });
  });

  it('says a registry that is down is retryable', async () => {
    // Arrange: a port nothing listens on any more
    const registry = await startLocalRegistry();
    await registry.close();
    // Act
    const error = await new ConfluentRegistryClient({ url: registry.url, timeoutMs: 500 })
      .getSchema('1')
      .catch((e: unknown) => e);
    // Assert
    expect(error).toMatchObject({ code: 'SCHEMA_REGISTRY_UNAVAILABLE', retryable: true });
  });

  it('retries once after a 5xx and a timeout', async () => {
    // Arrange
    const answers: Array<() => Promise<Response>> = [
      async () => new Response('busy', { status: 503 }),
      async () => Response.json({ schema: SCHEMA }),
    ];
    let calls = 0;
    const fetch = (async () => (answers[calls++] as () => Promise<Response>)()) as typeof globalThis.fetch;
    const hanging = (async (_url: unknown, init?: RequestInit) =>
      new Promise<Response>((_resolve, reject) =>
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)),
      )) as typeof globalThis.fetch;
    // Act
    const text = await new ConfluentRegistryClient({ url: 'http://registry', fetch }).getSchema('1');
    const timedOut = await new ConfluentRegistryClient({ url: 'http://registry', fetch: hanging, timeoutMs: 20 })
      .getSchema('1')
      .catch((e: unknown) => e);
    // Assert
    expect(text).toBe(SCHEMA);
    expect(calls).toBe(2);
    expect(timedOut).toMatchObject({ code: 'SCHEMA_REGISTRY_UNAVAILABLE' });
  });
});

describe('GlueRegistryClient', () => {
  const glue = mockClient(GlueClient);
  afterEach(() => glue.reset());
  const VERSION = '12345678-1234-1234-1234-123456789012';

  it('reads the schema definition of a version id', async () => {
    // Arrange
    glue
      .on(GetSchemaVersionCommand, { SchemaVersionId: VERSION })
      .resolves({ SchemaDefinition: SCHEMA, DataFormat: 'AVRO' });
    // Act
    const text = await new GlueRegistryClient(new GlueClient({ region: 'eu-west-1' })).getSchema(VERSION);
    // Assert
    expect(text).toBe(SCHEMA);
  });

  it.each([
    [
      'EntityNotFoundException',
      new EntityNotFoundException({ message: 'no', $metadata: {} }),
      'UNKNOWN_SCHEMA_ID',
      false,
    ],
    [
      'InternalServiceException',
      new InternalServiceException({ message: 'oops', $metadata: {} }),
      'SCHEMA_REGISTRY_UNAVAILABLE',
      true,
    ],
  ])('maps %s', async (_name, failure, code, retryable) => {
    // Arrange
    glue.on(GetSchemaVersionCommand).rejects(failure);
    // Act
    const error = await new GlueRegistryClient(new GlueClient({ region: 'eu-west-1' }))
      .getSchema(VERSION)
      .catch((e: unknown) => e);
    // Assert
    expect(error).toMatchObject({ code, retryable });
  });

  it('refuses a schema version that is not Avro', async () => {
    // Arrange
    glue.on(GetSchemaVersionCommand).resolves({ SchemaDefinition: '{}', DataFormat: 'JSON' });
    // Act
    const error = await new GlueRegistryClient(new GlueClient({ region: 'eu-west-1' }))
      .getSchema(VERSION)
      .catch((e: unknown) => e);
    // Assert
    expect(error).toMatchObject({ code: 'UNSUPPORTED_FORMAT', retryable: false });
  });
});
