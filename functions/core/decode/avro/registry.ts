import type { RegistryKind } from './framing';

/**
 * Port to a schema registry: the writer schema of a schema id. Adapters: Confluent REST
 * (functions/adapters/confluent-registry-client.ts), AWS Glue (functions/adapters/glue-registry-client.ts); tests pass
 * fakes.
 *
 * Contract: resolves with the Avro schema text; rejects with a retryable `SchemaRegistryError` when the registry
 * cannot answer now (unreachable, timeout, 5xx, throttled), and with a non-retryable `DecodeError('UNKNOWN_SCHEMA_ID')`
 * when it answers that the id does not exist (the record is dead-lettered).
 */
export interface SchemaRegistryClient {
  /** Which wire format's ids it resolves: Confluent schema ids (decimal) or Glue schema version UUIDs. */
  readonly kind: RegistryKind;
  getSchema(id: string): Promise<string>;
}
