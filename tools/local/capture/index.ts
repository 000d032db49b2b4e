/**
 * Local Debezium-compatible PostgreSQL capture (the "dev connector"): logical replication with pgoutput, emitting
 * what the Debezium PostgreSQL connector 3.1 emits with JsonConverter and schemas.enable=true. See `capture.ts`.
 */
export { startPostgresCapture } from './capture';
export { UNAVAILABLE_VALUE } from './codecs';
export { WATERMARK_PREFIX } from './incremental';
export { JsonFileOffsetStore, MemoryOffsetStore, type OffsetStore, type SourceOffset } from './offsets';
export { DEBEZIUM_VERSION } from './table-schema';
export type {
  AddedTable,
  CaptureCounts,
  CapturedRecord,
  CaptureLogger,
  CaptureOperation,
  CaptureOptions,
  CaptureSignal,
  CaptureStatus,
  IncrementalSnapshotStatus,
  PostgresCapture,
  SnapshotNotification,
  StopSnapshotSignal,
} from './types';
export { SourceError } from './types';
