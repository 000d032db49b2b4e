/**
 * `npm run smoke` against a real local run: the canary row goes through the capture, the broker and the three real
 * lanes into Redis, the Parquet change log and the audit log, and out again; a probe looking in the wrong place ends
 * the smoke test with the sink named. One run for both (its startup is most of the time), smoked while its workload
 * goes on.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunCoordinates } from '../../tools/local/runner/control';
import { type RunContext, type RunResult, runLocal } from '../../tools/local/runner/run';
import { AUDIT_PREFIX, WAREHOUSE_PREFIX } from '../../tools/local/runner/system';
import { LOCAL_CREDENTIALS, LOCAL_NAMES, LOCAL_REGION } from '../../tools/local/services';
import { renderSmoke, runSmoke, type SmokeResult } from '../../tools/smoke/smoke';
import { smallRun, sql } from './support';

const TOPIC_PREFIX = 'pg';

/** What the run file would announce, from the run's context. */
function coordinatesOf(context: RunContext): RunCoordinates {
  const { services } = context;
  return {
    source: {
      connectionString: context.connectionString,
      heartbeatTable: 'public.cdc_heartbeat',
      topicPrefix: TOPIC_PREFIX,
    },
    cache: services.redisUrl ? { url: services.redisUrl, prefix: context.cachePrefix } : null,
    s3: { endpoint: services.endpoints.s3, region: LOCAL_REGION, ...LOCAL_CREDENTIALS },
    warehouse: { bucket: LOCAL_NAMES.warehouseBucket, prefix: WAREHOUSE_PREFIX },
    audit: { bucket: LOCAL_NAMES.auditBucket, prefix: AUDIT_PREFIX },
  };
}

describe('npm run smoke against a local run', () => {
  let healthy: SmokeResult;
  let blind: SmokeResult;
  let blindMs: number;
  let canaryRows: number;
  let run: RunResult;

  beforeAll(async () => {
    // Arrange: a small run (4 s of workload); both smoke tests run beside its workload
    const options = smallRun({ topicPrefix: TOPIC_PREFIX });
    const smokes = async (context: RunContext) => {
      const coordinates = coordinatesOf(context);
      // Act: a smoke test of the run as it is, then one whose warehouse probe looks under a prefix nobody writes
      healthy = await runSmoke(coordinates, { timeoutMs: 15_000 });
      const started = Date.now();
      blind = await runSmoke(
        { ...coordinates, warehouse: { ...coordinates.warehouse, prefix: 'nowhere/' } },
        { timeoutMs: 1_500 },
      );
      blindMs = Date.now() - started;
      const { rows } = await sql<{ n: string }>(
        context.connectionString,
        'SELECT count(*) AS n FROM public.cdc_heartbeat WHERE id < 0',
      );
      canaryRows = Number(rows[0]?.n);
    };
    run = await runLocal(options, { whileRunning: smokes });
  }, 120_000);

  it('every sink shows the canary and its delete, with a latency each; no canary row stays behind', () => {
    // Assert
    expect(healthy.ok, JSON.stringify(healthy)).toBe(true);
    expect(healthy.canaryId).toBeLessThan(0);
    for (const outcomes of [healthy.sinks, healthy.deleted]) {
      expect(Object.keys(outcomes ?? {}).sort()).toEqual(['audit', 'cache', 'warehouse']);
      for (const outcome of Object.values(outcomes ?? {})) {
        expect(outcome.seen).toBe(true);
        expect(outcome.latencyMs).toBeGreaterThanOrEqual(0);
        expect(outcome.latencyMs).toBeLessThan(15_000);
      }
    }
    expect(canaryRows).toBe(0);
    // The run's own verification of the sinks agrees: the canaries came and went in each as in the source.
    const { warehouse, cache, audit } = run.checks;
    expect(warehouse.consistent, JSON.stringify(warehouse)).toBe(true);
    expect(cache.consistent, JSON.stringify(cache)).toBe(true);
    if (!audit.checked) throw new Error('the audit log must have been checked');
    expect(audit).toMatchObject({ duplicateIds: 0, missing: 0, unexpected: 0, notInWarehouse: 0, notInAudit: 0 });
  });

  it('a sink that never shows the canary fails the smoke test within the timeout, named', () => {
    // Assert
    expect(blind.ok).toBe(false);
    expect(blind.sinks.warehouse).toEqual({ seen: false, latencyMs: null });
    expect(blind.sinks.cache?.seen).toBe(true);
    expect(blind.sinks.audit?.seen).toBe(true);
    expect(blind.deleted).toBeNull();
    expect(blindMs).toBeLessThan(6_000);
    expect(renderSmoke(blind, 'pg.public.cdc_heartbeat', 1_500)).toContain(
      'FAILED: warehouse did not show the canary within 1.5 s',
    );
  });
});
