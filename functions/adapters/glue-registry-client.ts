import { GetSchemaVersionCommand, type GetSchemaVersionCommandOutput, type GlueClient } from '@aws-sdk/client-glue';
import type { SchemaRegistryClient } from '../core/decode/avro/registry';
import { DecodeError, SchemaRegistryError } from '../core/errors';

/**
 * AWS Glue Schema Registry: `GetSchemaVersion` by `SchemaVersionId` (the UUID in the Glue frame). The SDK retries
 * throttling and 5xx itself; what still fails is retryable (SchemaRegistryError), except EntityNotFoundException (an
 * unknown version id: dead-lettered) and a non-Avro data format. Needs `glue:GetSchemaVersion` on the registry and its
 * schemas.
 */
export class GlueRegistryClient implements SchemaRegistryClient {
  readonly kind = 'glue' as const;
  constructor(private readonly glue: GlueClient) {}

  async getSchema(id: string): Promise<string> {
    let output: GetSchemaVersionCommandOutput;
    try {
      output = await this.glue.send(new GetSchemaVersionCommand({ SchemaVersionId: id }));
    } catch (error) {
      const name = (error as { name?: string })?.name;
      if (name === 'EntityNotFoundException') {
        throw new DecodeError('UNKNOWN_SCHEMA_ID', `Glue schema version ${id} does not exist`, { cause: error });
      }
      if (name === 'InvalidInputException') {
        throw new DecodeError('UNKNOWN_SCHEMA_ID', `Glue schema version id ${id} is not valid`, { cause: error });
      }
      throw new SchemaRegistryError(`Glue GetSchemaVersion ${id}: ${name ?? 'Error'}: ${(error as Error)?.message}`, {
        cause: error,
      });
    }
    if (output.DataFormat && output.DataFormat !== 'AVRO') {
      throw new DecodeError('UNSUPPORTED_FORMAT', `Glue schema version ${id} is ${output.DataFormat}, not Avro`);
    }
    if (!output.SchemaDefinition) throw new SchemaRegistryError(`Glue schema version ${id} has no definition`);
    return output.SchemaDefinition;
  }
}
