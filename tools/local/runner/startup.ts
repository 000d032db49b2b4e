/**
 * The second part of a run's startup, once the source and the services are up: the lanes it can run, the Avro
 * converter's schema registry, the pipeline itself (capture → broker → lanes, system.ts) with its initial snapshot
 * through every sink, and the control endpoint `npm run backfill` talks to.
 */
import { join } from 'node:path';
import pg from 'pg';
import { LANES, type Lane } from '../../../functions/core/types';
import { deleteKeysWithPrefix } from '../../lib/redis-keys';
import { JsonFileOffsetStore, MemoryOffsetStore } from '../capture';
import type { SnapshotNotification } from '../capture/types';
import { type LocalRegistry, startLocalRegistry } from '../registry/server';
import { LOCAL_CREDENTIALS, LOCAL_NAMES, LOCAL_REGION } from '../services';
import { type ControlServer, startControlServer } from './control';
import type { LiveProgress } from './progress';
import type { Run } from './setup';
import { dropSlotAtCleanup, type PreparedSource } from './source';
import { capturedTables } from './source-checks';
import { StageTimings } from './stages';
import { AUDIT_PREFIX, type LocalPipeline, startLocalPipeline, WAREHOUSE_PREFIX } from './system';

/** The pipeline of a run, its initial snapshot in every sink. */
export interface StartedPipeline {
  running: LocalPipeline;
  /** The lanes that run: all, or all but the cache without Redis. */
  lanes: Lane[];
  /** The Avro converter's registry (`--format avro`). */
  registry: LocalRegistry | undefined;
  /** Stage timings of the changes streamed from here on. */
  stages: StageTimings;
}

function noRedisBanner(reason: string): string {
  return [
    '',
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    `!!  NO REDIS: running WITHOUT the cache lane (${reason}).`,
    '!!  The cache will NOT be verified. Set REDIS_URL or put redis-server on PATH to include it.',
    '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!',
    '',
  ].join('\n');
}

/** An incremental-snapshot notification, as the run tells it; a table that could not be re-read is a problem. */
function reportNotification(n: SnapshotNotification, say: (message: string) => void, problems: string[]): void {
  if (n.type === 'STARTED') say(`incremental snapshot ${n.id}: started`);
  if (n.type === 'TABLE_SCAN_COMPLETED') {
    const table = n.additional_data.scanned_collection ?? n.additional_data.data_collection;
    const status = n.additional_data.status ?? 'SUCCEEDED';
    if (status === 'SUCCEEDED' || status === 'EMPTY') {
      say(`incremental snapshot ${n.id}: ${table} re-read, ${n.additional_data.total_rows_scanned ?? '?'} rows`);
    } else {
      // NO_PRIMARY_KEY, SQL_EXCEPTION, …: the table was not re-read, and its rows may keep an older shape.
      const problem = `incremental snapshot ${n.id}: ${table} was NOT re-read (${status})`;
      problems.push(problem);
      say(`! ${problem}`);
    }
  }
  if (n.type === 'COMPLETED' || n.type === 'ABORTED') say(`incremental snapshot ${n.id}: ${n.type.toLowerCase()}`);
}

/** The control endpoint `npm run backfill` talks to (see control.ts), with the tables the run captures now. */
function startControl(
  runFile: string,
  schema: string,
  running: LocalPipeline,
  source: PreparedSource,
  names: { topicPrefix: string; cachePrefix: string },
): Promise<ControlServer> {
  const { topicPrefix, cachePrefix } = names;
  return startControlServer(
    {
      schema,
      tables: async () => {
        const client = new pg.Client(source.connectionString);
        await client.connect();
        try {
          return await capturedTables(client, source.selection, source.signalTable ? [source.signalTable] : []);
        } finally {
          await client.end();
        }
      },
      signal: (signal) => running.signal(signal, 'control'),
      snapshot: (id) => running.snapshots.get(id),
      coordinates: {
        source: {
          connectionString: source.connectionString,
          heartbeatTable: source.heartbeatTable ?? null,
          topicPrefix,
        },
        cache: source.services.redisUrl ? { url: source.services.redisUrl, prefix: cachePrefix } : null,
        s3: { endpoint: source.services.endpoints.s3, region: LOCAL_REGION, ...LOCAL_CREDENTIALS },
        warehouse: { bucket: LOCAL_NAMES.warehouseBucket, prefix: WAREHOUSE_PREFIX },
        audit: { bucket: LOCAL_NAMES.auditBucket, prefix: AUDIT_PREFIX },
        dedupe: { endpoint: source.services.endpoints.dynamodb, table: LOCAL_NAMES.dedupeTable },
      },
    },
    runFile,
  );
}

/** Starts the pipeline on the prepared source and waits until its initial snapshot reached every sink. */
export async function startPipeline(
  run: Run,
  source: PreparedSource,
  progress: LiveProgress,
): Promise<StartedPipeline> {
  const { options, hooks, cleanup, problems, log, stateDir, cachePrefix, slotName } = run;
  const { services, connectionString, signalTable, heartbeatTable } = source;
  // A heartbeat table outside the tables asked for is captured too: its changes are what freshness is measured by.
  const asked = source.selection;
  const selection =
    heartbeatTable && 'tables' in asked && !asked.tables.includes(heartbeatTable)
      ? { tables: [...asked.tables, heartbeatTable] }
      : asked;
  if (services.redisUrl && !options.keep) {
    const url = services.redisUrl;
    cleanup.push('redis', () => deleteKeysWithPrefix(url, cachePrefix));
  }

  const lanes: Lane[] = services.redisUrl ? [...LANES] : LANES.filter((l) => l !== 'cache');
  if (!services.redisUrl) {
    log(noRedisBanner(options.redis === null ? '--no-cache was given' : (services.redisProblem ?? 'Redis not found')));
  }

  let registry: LocalRegistry | undefined;
  if (options.format === 'avro') {
    // The Avro converter's registry: every key and value schema is registered there, the lanes read them back.
    const started = await startLocalRegistry();
    registry = started;
    started.state.globalLevel = options.compatibility;
    cleanup.push('schema registry', () => started.close());
    log(`Avro through the local schema registry at ${started.url} (compatibility ${options.compatibility})`);
  }

  log(`capturing (slot ${slotName}) and snapshotting existing rows…`);
  // From here the capture may have made its slot and publication: in someone else's database they must go again.
  if (options.source) dropSlotAtCleanup(run, options.source);
  let stages: StageTimings | undefined;
  const say = (message: string) => progress.say(message);
  const running = await startLocalPipeline({
    onSinkWrite: (lane, events, writtenAt) => {
      stages?.record(lane, events, writtenAt);
      hooks.status?.written(lane, events);
    },
    services,
    connectionString,
    topicPrefix: options.topicPrefix,
    slotName,
    publicationName: slotName,
    ...selection,
    lanes,
    cachePrefix,
    partitions: options.partitions,
    batchSize: options.batchSize,
    windowMs: options.windowMs,
    concurrency: options.concurrency,
    logLevel: options.logLevel,
    laneThreads: options.laneThreads ?? true,
    ...(hooks.faults ? { faults: hooks.faults } : {}),
    releaseConsumed: options.releaseConsumed ?? true,
    ...(options.maxBacklog !== undefined ? { maxBacklog: options.maxBacklog } : {}),
    ...(options.offsetFlushIntervalMs ? { offsetFlushIntervalMs: options.offsetFlushIntervalMs } : {}),
    offsets: options.keep ? new JsonFileOffsetStore(join(stateDir, 'capture-offset.json')) : new MemoryOffsetStore(),
    ...(options.keep ? { brokerDir: join(stateDir, 'broker') } : {}),
    ...(signalTable ? { signalTable } : {}),
    ...(heartbeatTable ? { heartbeatTable } : {}),
    ...(options.incrementalChunkSize ? { incrementalChunkSize: options.incrementalChunkSize } : {}),
    ...(hooks.beforeHighWatermark ? { beforeHighWatermark: hooks.beforeHighWatermark } : {}),
    format: options.format,
    ...(registry ? { registry: { url: registry.url } } : {}),
    onTableAdded: (table) => say(`new table ${table.schema}.${table.table}: capturing it from its first row`),
    onNotification: (n) => reportNotification(n, say, problems),
    onLaneError: (lane, message) => hooks.status?.laneError(lane, message),
    onProblem: (message) => {
      problems.push(message);
      hooks.status?.problem(message);
      say(`! ${message}`);
    },
  });
  hooks.status?.attach(running, lanes);
  cleanup.push('pipeline', () => running.stop());
  await running.drain();
  running.resetLatency();
  stages = new StageTimings(running.broker, lanes);

  if (options.runFile) {
    const control = await startControl(options.runFile, options.schema, running, source, {
      topicPrefix: options.topicPrefix,
      cachePrefix,
    });
    cleanup.push('control endpoint', () => control.close());
  }
  return { running, lanes, registry, stages };
}
