/**
 * One error hierarchy for the whole pipeline. Every error has a stable `code` and a `retryable` flag:
 * - not retryable (decode, validation, configuration): the record is dead-lettered and the batch goes on;
 * - retryable (a sink, DynamoDB or SQS unavailable, throttled, a checkpoint conflict): the partition's records are
 *   reported as failed (or the batch throws) so the event source mapping retries them.
 */
export abstract class CdcError extends Error {
  abstract readonly code: string;
  abstract readonly retryable: boolean;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export type DecodeErrorCode =
  | 'BAD_BASE64'
  | 'INVALID_UTF8'
  | 'NOT_JSON'
  | 'NOT_AN_OBJECT'
  | 'UNKNOWN_OP'
  | 'MISSING_SOURCE'
  | 'INVALID_ENVELOPE'
  | 'INVALID_KEY'
  | 'RECORD_TOO_LARGE'
  | 'UNSUPPORTED_FORMAT'
  | 'INVALID_RECORD'
  | 'UNKNOWN_SCHEMA_ID'
  | 'INVALID_AVRO';

/** A record that cannot be turned into a change event. Never retryable: retrying cannot fix the bytes. */
export class DecodeError extends CdcError {
  readonly retryable = false;
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The schema registry (Confluent REST or AWS Glue) could not be reached, timed out or answered 5xx/throttled. Retryable:
 * the record is fine, its writer schema could not be fetched now. (An id the registry does not know is a DecodeError.)
 */
export class SchemaRegistryError extends CdcError {
  readonly code = 'SCHEMA_REGISTRY_UNAVAILABLE';
  readonly retryable = true;
}

/** The Lambda event itself is not a Kafka event source mapping event. */
export class InvalidEventError extends CdcError {
  readonly code = 'INVALID_EVENT';
  readonly retryable = false;
}

/** A missing or malformed setting, found at cold start. */
export class ConfigError extends CdcError {
  readonly code = 'INVALID_CONFIG';
  readonly retryable = false;
}

export type SinkErrorCode = 'SINK_UNAVAILABLE' | 'SINK_THROTTLED' | 'SINK_REJECTED' | 'SINK_ROW_FAILED';

/**
 * A sink write failed. Outages and throttling are retryable; a sink rejecting one record is not. SINK_ROW_FAILED: one
 * row could not be written now for a reason of its own (retryable; a key that keeps failing is parked, parking.ts).
 */
export class SinkError extends CdcError {
  readonly retryable: boolean;
  constructor(
    readonly code: SinkErrorCode,
    message: string,
    options: { retryable: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable;
  }
}

export type SchemaHistoryErrorCode = 'SCHEMA_REGISTRY_UNAVAILABLE' | 'SCHEMA_REGISTRY_CONTENDED' | 'SIGNAL_FAILED';

/**
 * The schema registry could not be read or written, or a reconciliation signal could not be sent. Always retryable:
 * the partition is retried from its checkpoint, meets the schema version again and finishes what was left.
 */
export class SchemaHistoryError extends CdcError {
  readonly retryable = true;
  constructor(
    readonly code: SchemaHistoryErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type DedupeErrorCode = 'DEDUPE_UNAVAILABLE' | 'CHECKPOINT_CONFLICT';

/** The dedupe store could not be read or the checkpoint could not be committed. Always retryable. */
export class DedupeError extends CdcError {
  readonly retryable = true;
  constructor(
    readonly code: DedupeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Dead letters could not be stored. Retryable: the bad record must not be acknowledged before it is kept. */
export class DeadLetterError extends CdcError {
  readonly code = 'DEAD_LETTER_UNAVAILABLE';
  readonly retryable = true;
}

/** The error as data: what dead letters, logs and the decode CLI print. */
export function describeError(error: unknown): { code: string; message: string; retryable: boolean } {
  if (error instanceof CdcError) return { code: error.code, message: error.message, retryable: error.retryable };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'UNEXPECTED', message, retryable: true };
}
