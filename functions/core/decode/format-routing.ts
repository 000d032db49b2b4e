import { DecodeError } from '../errors';
import type { DecodeOutcome, Decoder, KafkaRecord } from '../types';
import { decodeRecord } from './record';

export interface FormatRoutingDecoderOptions {
  /** Decodes JsonConverter records (and tombstones, whose value is empty). */
  json: Decoder;
  /**
   * Decodes records whose value is schema-registry framed (Confluent magic byte 0, Glue header version 3). Absent:
   * the lane has no registry configured, and a framed record is dead-lettered as UNSUPPORTED_FORMAT.
   */
  avro?: Decoder;
  /** Values larger than this are dead-lettered (RECORD_TOO_LARGE) when no Avro decoder is there to say so. */
  maxRecordBytes?: number;
}

/**
 * Whether a base64 value starts with a registry frame. The first base64 character carries the first byte's top six
 * bits, so `A` (000000) means a first byte of 0–3: Confluent's magic byte 0 and Glue's header version 3 start that
 * way, and JSON text never does (it starts with `{`, `[`, a letter, a digit or whitespace, all ≥ 0x09). Bytes 1 and 2
 * are neither format; the Avro decoder reports them as an unknown frame. One character read, no decoding, because
 * it runs for every record of every lane.
 */
export function isRegistryFramed(base64: string): boolean {
  return base64.charCodeAt(0) === 0x41; // 'A'
}

/**
 * Sends each record to the decoder of its wire format, decided by the record itself rather than by its topic: a lane
 * consumes the topics of several sources, some JsonConverter and some Avro, and the connectors' catch-all topic of
 * an Avro source carries Avro too. `prepare` is forwarded to both decoders (the Avro decoder fetches the writer
 * schemas the batch names; it ignores unframed records itself).
 */
export class FormatRoutingDecoder implements Decoder {
  private readonly json: Decoder;
  private readonly avro: Decoder | undefined;
  private readonly maxRecordBytes: number;

  constructor(options: FormatRoutingDecoderOptions) {
    this.json = options.json;
    this.avro = options.avro;
    this.maxRecordBytes = options.maxRecordBytes ?? 1_048_576;
  }

  async prepare(records: readonly KafkaRecord[]): Promise<void> {
    await Promise.all([this.json.prepare?.(records), this.avro?.prepare?.(records)]);
  }

  decode(record: KafkaRecord, processedAt: number): DecodeOutcome {
    const value = record.value;
    if (!value || !isRegistryFramed(value)) return this.json.decode(record, processedAt);
    if (this.avro) return this.avro.decode(record, processedAt);
    return decodeRecord(record, this.maxRecordBytes, () => {
      throw new DecodeError(
        'UNSUPPORTED_FORMAT',
        'value is schema-registry framed (Avro) but this lane has no AVRO_REGISTRY configured',
      );
    });
  }
}
