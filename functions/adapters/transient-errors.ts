import { SinkError } from '../core/errors';

/** Error names AWS uses for throttling across services (the SDK already retried these with backoff). */
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'SlowDown',
  'RequestThrottled',
  'RequestThrottledException',
]);

/**
 * Maps a failed sink write (the S3 sinks' AWS SDK errors, the cache sink's Redis errors) to a SinkError, throttling
 * named as such. Everything is retryable: an outage, throttling, and also access or configuration errors —
 * dead-lettering good records because a bucket policy or a Redis ACL is wrong would lose them, while retrying keeps
 * them until an operator fixes it (the error alarm fires meanwhile).
 */
export function sinkErrorFrom(error: unknown, what: string): SinkError {
  if (error instanceof SinkError) return error;
  const name = (error as { name?: string })?.name ?? 'Error';
  const message = (error as Error)?.message ?? String(error);
  const code = THROTTLING.has(name) ? 'SINK_THROTTLED' : 'SINK_UNAVAILABLE';
  return new SinkError(code, `${what}: ${name}: ${message}`, { retryable: true, cause: error });
}
