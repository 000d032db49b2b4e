/**
 * A run's verification, once it drained: the current-state tables brought up to the whole change log, the source
 * read again (through a throw-away snapshot, source-rows.ts) and every sink compared with it (verify.ts), or nothing
 * when `--no-verify` said so.
 */
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Lane } from '../../../functions/core/types';
import { LOCAL_NAMES } from '../services';
import type { RunContext } from './context';
import { CURRENT_STATE_FILE, type CurrentStateTables } from './current-state';
import type { Run } from './setup';
import type { PreparedSource } from './source';
import { capturedTables } from './source-checks';
import { readSourceRows } from './source-rows';
import { AUDIT_PREFIX, WAREHOUSE_PREFIX } from './system';
import { type Checks, type NotChecked, verifyAudit, verifyCache, verifyCurrentState, verifyWarehouse } from './verify';

/** What verification found. */
export interface Verified {
  checks: Checks;
  /** Distinct changes captured after the initial snapshot. */
  changes: number;
  /** Captured tables dropped during the run (topic names): reported, not compared. */
  dropped: string[];
}

interface VerifyInput {
  context: RunContext;
  lanes: readonly Lane[];
  /** The topics of the tables the run captured. */
  topics: string[];
  /** The tables captured (see source-checks.ts) and the signal table, left out of the comparison. */
  source: Pick<PreparedSource, 'selection' | 'signalTable'>;
  /** What the capture had emitted when the workload began (counts the changes when nothing is verified). */
  emittedAtStart: number;
  /** The run's current-state tables, their periodic steps stopped. */
  currentState: CurrentStateTables;
}

/** The last step of the current-state tables, once the lanes wrote everything: why it failed, if it did. */
async function catchUp(currentState: CurrentStateTables): Promise<string | undefined> {
  try {
    await currentState.step();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Checks every sink against the source, unless verification was not asked for. */
export async function verifyRun(run: Run, input: VerifyInput): Promise<Verified> {
  if (run.options.verify === false) {
    const failure = await catchUp(input.currentState);
    if (failure) run.problems.push(`the current-state tables could not apply the change log: ${failure}`);
    const skipped: NotChecked = { checked: false, consistent: false, reason: 'verification was not asked for' };
    return {
      checks: { warehouse: skipped, currentState: skipped, cache: skipped, audit: skipped },
      changes: input.context.pipeline.captureEmitted() - input.emittedAtStart,
      dropped: [],
    };
  }
  run.log('verifying every sink against the source…');
  run.hooks.status?.setPhase('verifying');
  return compareWithSource(run, input);
}

/** Reads the source rows once the run drained, then checks every sink (see verify.ts). */
async function compareWithSource(run: Run, input: VerifyInput): Promise<Verified> {
  const { options, problems, log } = run;
  const { context } = input;
  const { selection, signalTable } = input.source;
  const { pipeline: running, services, connectionString, cachePrefix } = context;
  const read = () =>
    readSourceRows({
      connectionString,
      topicPrefix: options.topicPrefix,
      ...selection,
      namePrefix: context.slotName,
    });
  let source = await read();
  for (let attempt = 1; ; attempt++) {
    // The source rows must be the state the sinks were drained to: if anything was captured since, read again.
    const emitted = running.captureEmitted();
    await running.drain();
    if (running.captureEmitted() === emitted) break;
    if (attempt >= 3) {
      problems.push('the source kept changing during verification: mismatches may be changes still in flight');
      break;
    }
    log('the source changed during verification; reading it again…');
    source = await read();
  }
  const currentStateFailure = await catchUp(input.currentState);
  await run.hooks.beforeVerify?.(context);

  // The signal table is the connector's, not data: its watermark rows are in the source but never captured.
  if (signalTable) source.delete(`${options.topicPrefix}.${signalTable}`);
  // Topics of tables that are gone from the source: dropped during the run, reported as such and not compared.
  const client = new pg.Client(connectionString);
  await client.connect();
  const present = await capturedTables(client, selection).finally(() => client.end());
  const current = new Set(present.map((t) => `${options.topicPrefix}.${t}`));
  const dropped = new Set(input.topics.filter((t) => !current.has(t)));
  const stream = await running.stream();
  const tables = [...new Set([...source.keys(), ...input.topics])].sort();
  const { s3 } = services.clients;
  const warehouse = await verifyWarehouse({
    s3,
    bucket: LOCAL_NAMES.warehouseBucket,
    prefix: WAREHOUSE_PREFIX,
    dir: join(run.stateDir, 'warehouse'),
    source,
    stream,
    tables,
    dropped,
  });
  const currentState = await verifyCurrentState({
    currentState: input.currentState,
    database: join(run.stateDir, CURRENT_STATE_FILE),
    ...(currentStateFailure ? { failure: currentStateFailure } : {}),
    source,
    stream,
    tables,
    dropped,
  });
  let cache: Checks['cache'];
  if (services.redisUrl && input.lanes.includes('cache')) {
    const redis = new Redis(services.redisUrl);
    try {
      cache = await verifyCache({ redis, prefix: cachePrefix, source, stream, tables, dropped });
    } finally {
      redis.disconnect();
    }
  } else {
    cache = {
      checked: false,
      consistent: false,
      reason:
        options.redis === null
          ? 'the cache lane did not run (--no-cache)'
          : `the cache lane did not run: ${services.redisProblem ?? 'no Redis'}`,
    };
  }
  const audit = await verifyAudit({
    s3,
    bucket: LOCAL_NAMES.auditBucket,
    prefix: AUDIT_PREFIX,
    stream,
    warehouseIds: warehouse.ids,
    captureEmitted: running.captureChangeRecords(),
    crashed: running.crashed(),
  });
  return {
    checks: { warehouse: warehouse.check, currentState, cache, audit },
    changes: stream.streamed,
    dropped: [...dropped],
  };
}
