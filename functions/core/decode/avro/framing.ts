import { deflateSync, inflateSync } from 'node:zlib';
import { DecodeError } from '../../errors';

/**
 * Schema-registry wire formats (the 5- or 18-byte header in front of the Avro binary):
 * - Confluent: `[0x00 magic][int32 big-endian schema id][avro]`.
 * - AWS Glue Schema Registry: `[0x03 header version][0x00 no compression | 0x05 zlib][16-byte schema version UUID]
 *   [avro, zlib-deflated when the compression byte is 5]` (awslabs/aws-glue-schema-registry
 *   `AWSSchemaRegistryConstants`: HEADER_VERSION_BYTE=3, COMPRESSION_BYTE=5, SCHEMA_VERSION_ID_SIZE=16).
 * Tombstones carry no frame: Kafka null stays null.
 */
export type RegistryKind = 'confluent' | 'glue';

/** Which writer schema a framed key or value names, and its Avro payload (already inflated). */
export interface Frame {
  registry: RegistryKind;
  /** Confluent: the schema id in decimal; Glue: the schema version UUID, lower case 8-4-4-4-12. */
  schemaId: string;
  payload: Buffer;
}

export const CONFLUENT_MAGIC = 0x00;
export const GLUE_HEADER_VERSION = 0x03;
export const GLUE_COMPRESSION_NONE = 0x00;
export const GLUE_COMPRESSION_ZLIB = 0x05;
const GLUE_HEADER_BYTES = 18;

/** The 16 bytes at `offset` as a UUID string. */
export function uuidAt(bytes: Buffer, offset: number): string {
  const hex = bytes.toString('hex', offset, offset + 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Reads the registry header of a key or value. A byte sequence in neither format is an UNSUPPORTED_FORMAT error. */
export function readFrame(bytes: Buffer, what: 'key' | 'value'): Frame {
  if (bytes.length >= 5 && bytes[0] === CONFLUENT_MAGIC) {
    return { registry: 'confluent', schemaId: String(bytes.readUInt32BE(1)), payload: bytes.subarray(5) };
  }
  if (bytes.length >= GLUE_HEADER_BYTES && bytes[0] === GLUE_HEADER_VERSION) {
    const compression = bytes[1];
    const schemaId = uuidAt(bytes, 2);
    const body = bytes.subarray(GLUE_HEADER_BYTES);
    if (compression === GLUE_COMPRESSION_NONE) return { registry: 'glue', schemaId, payload: body };
    if (compression === GLUE_COMPRESSION_ZLIB) {
      try {
        return { registry: 'glue', schemaId, payload: inflateSync(body) };
      } catch (error) {
        throw new DecodeError(
          'INVALID_AVRO',
          `${what} is Glue zlib-compressed but does not inflate: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
    }
    throw new DecodeError(
      'UNSUPPORTED_FORMAT',
      `${what} has Glue header version 3 but unknown compression byte ${compression}`,
    );
  }
  const first = bytes.length ? `0x${(bytes[0] as number).toString(16).padStart(2, '0')}` : 'nothing';
  throw new DecodeError(
    'UNSUPPORTED_FORMAT',
    `${what} is not schema-registry framed (starts with ${first}; expected 0x00 Confluent magic or 0x03 Glue header)`,
  );
}

/** Confluent framing of an Avro payload (encoders: tools, the local run, tests). */
export function confluentFrame(schemaId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = CONFLUENT_MAGIC;
  header.writeUInt32BE(schemaId, 1);
  return Buffer.concat([header, payload]);
}

/** Glue framing of an Avro payload, deflated with zlib when `compress` (what the Glue serde's ZLIB setting does). */
export function glueFrame(versionId: string, payload: Buffer, compress = false): Buffer {
  const uuid = Buffer.from(versionId.replace(/-/g, ''), 'hex');
  if (uuid.length !== 16) throw new Error(`not a UUID: ${versionId}`);
  const body = compress ? deflateSync(payload) : payload;
  return Buffer.concat([
    Buffer.from([GLUE_HEADER_VERSION, compress ? GLUE_COMPRESSION_ZLIB : GLUE_COMPRESSION_NONE]),
    uuid,
    body,
  ]);
}
