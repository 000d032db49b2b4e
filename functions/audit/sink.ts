import { S3AuditSink } from '../adapters/s3-audit-sink';
import type { SinkFactory } from '../shared/lane-deps';

/** The audit lane's sink: hash-chained NDJSON in the Object Lock bucket. */
export const createAuditSink: SinkFactory<'audit'> = (env, clients) =>
  new S3AuditSink(clients.s3, { bucket: env.AUDIT_BUCKET, prefix: env.AUDIT_PREFIX });
