import { Logger } from '@aws-lambda-powertools/logger';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import type { BatchResult } from '../core/pipeline';
import { isUnreconciled } from '../core/schema-history';
import type { Lane } from '../core/types';

/** Namespace and service name of every metric: dashboards and alarms select `{service, lane}` (+ `table`). */
export const METRICS_NAMESPACE = 'cdc-sync';
export const METRICS_SERVICE = 'cdc-sync';

export interface Observability {
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
}

export function createObservability(lane: Lane, env: NodeJS.ProcessEnv = process.env): Observability {
  // Passed explicitly (not only read from process.env) so several local lanes in one process can differ.
  const logLevel = env.POWERTOOLS_LOG_LEVEL as LogLevel | undefined;
  return {
    logger: new Logger({
      serviceName: `cdc-sync-${lane}`,
      persistentKeys: { lane },
      ...(logLevel ? { logLevel } : {}),
    }),
    metrics: new Metrics({ namespace: METRICS_NAMESPACE, serviceName: METRICS_SERVICE, defaultDimensions: { lane } }),
    tracer: new Tracer({ serviceName: `cdc-sync-${lane}` }),
  };
}

/**
 * EMF keeps at most 100 values per metric per document: with more, keep 99 evenly spaced order statistics so
 * CloudWatch percentiles stay representative of the batch. 99, not 100: Powertools flushes a metric by itself when
 * its 100th value is added, and the explicit publish that follows then finds nothing and logs "No application
 * metrics to publish" (once per table per large batch).
 */
export function sampleForEmf(values: number[], limit = 99): number[] {
  if (values.length <= limit) return values;
  const sorted = [...values].sort((a, b) => a - b);
  return Array.from({ length: limit }, (_, i) => sorted[Math.round((i * (sorted.length - 1)) / (limit - 1))] as number);
}

/**
 * Publishes the batch's metrics: per topic (dimension `table`, one topic per table) and a lane rollup
 * (published by the logMetrics middleware at the end of the invocation).
 */
export function recordBatchMetrics(metrics: Metrics, result: BatchResult): void {
  const all: number[] = [];
  for (const [topic, c] of result.topics) {
    metrics.addDimension('table', topic);
    metrics.addMetric('EventsProcessed', MetricUnit.Count, c.processed);
    metrics.addMetric('EventsSkipped', MetricUnit.Count, c.skipped);
    metrics.addMetric('Duplicates', MetricUnit.Count, c.duplicates);
    metrics.addMetric('DeadLettered', MetricUnit.Count, c.deadLettered);
    // Only when it happened: a per-table series exists once a key of the table was parked (each series is billed).
    if (c.keysParked > 0) metrics.addMetric('KeysParked', MetricUnit.Count, c.keysParked);
    for (const v of sampleForEmf(c.latenciesMs)) metrics.addMetric('CommitToSinkLatency', MetricUnit.Milliseconds, v);
    metrics.publishStoredMetrics();
    for (const v of c.latenciesMs) all.push(v);
  }
  for (const change of result.schemaChanges) {
    // Dimension `table` is the table id (`<prefix>.<schema>.<table>`, the topic's name under Debezium's default).
    metrics.addDimension('table', change.table);
    metrics.addMetric('SchemaChanged', MetricUnit.Count, 1);
    if (isUnreconciled(change)) metrics.addMetric('SchemaChangeUnreconciled', MetricUnit.Count, 1);
    metrics.publishStoredMetrics();
  }
  for (const [source, { commitTs, writtenAt }] of result.freshness) {
    // Dimension `source` is the connector's topic prefix; the alarm per source takes the Maximum over the lanes.
    metrics.addDimension('source', source);
    metrics.addMetric('SourceFreshness', MetricUnit.Milliseconds, Math.max(0, writtenAt - commitTs));
    metrics.publishStoredMetrics();
  }
  metrics.addMetric('EventsProcessed', MetricUnit.Count, result.processed);
  metrics.addMetric('EventsSkipped', MetricUnit.Count, result.skipped);
  metrics.addMetric('Duplicates', MetricUnit.Count, result.duplicates);
  metrics.addMetric('DeadLettered', MetricUnit.Count, result.deadLettered);
  metrics.addMetric('RecordsRetried', MetricUnit.Count, result.retried);
  // The lane rollup every batch: the KeysParked alarm's metric (docs/architecture.md, "Parking a poison key").
  metrics.addMetric('KeysParked', MetricUnit.Count, result.parked.length);
  metrics.addMetric('SinkWriteMs', MetricUnit.Milliseconds, result.sinkWriteMs);
  for (const v of sampleForEmf(all)) metrics.addMetric('CommitToSinkLatency', MetricUnit.Milliseconds, v);
}
