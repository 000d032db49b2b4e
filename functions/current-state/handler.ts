import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  type QueryExecution,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { type AttributeValue, DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetTableCommand, GlueClient, type Table } from '@aws-sdk/client-glue';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import * as z from 'zod/mini';
import '../core/zod';
import { META_COLUMNS } from '../adapters/change-log-parquet';
import { CdcError, ConfigError, describeError } from '../core/errors';
import {
  CURRENT_STATE_META,
  type CurrentStateTable,
  type CurrentStateType,
  createDeletedTableStatement,
  createTableStatement,
  evolveTable,
  type MergeRelations,
  mergeStatements,
} from './merge-sql';

/**
 * The current-state function: EventBridge Scheduler runs it every few minutes (`{"task":"merge"}`) and once a day
 * (`{"task":"maintain"}`). For each table it keeps a current-state table of, it applies the change log to the Iceberg
 * current-state table with the statements of ./merge-sql.ts through Athena, one statement at a time, polling each to
 * its end.
 *
 * Which changes a run applies: those the warehouse lane processed (`_cdc_processed_at`) after the start of the last
 * successful run less `OVERLAP_SECONDS` (the lane's timeout and a minute: a change is in S3 at most one lane invocation
 * after it was processed), up to this run's start. The merge is idempotent and order-independent (ranges applied
 * twice or overlapping leave the same table), so the overlap only costs rows read again. The scan is bounded to the
 * commit days a change processed in the range can have (`LOOKBACK_HOURS` before the range starts, the Kafka retention
 * and a day): older commit days are read only on a full refresh (no position).
 *
 * Per table, a state item `cs#<table id>` in the dedupe table holds the position (`appliedThrough`: the start of the
 * last successful run), when the table was first tried (`createdAt`) and a lease (`leaseId`, `leaseUntil`) that keeps
 * two runs (a slow one and the next) off the same table: Iceberg would reject one of the two commits anyway. The
 * position moves only after every statement succeeded; a failed run leaves it, and the next run applies its range
 * again. Deleting the item makes the next run apply the whole change log (a full refresh).
 *
 * Metric `CurrentStateFreshness` (seconds, namespace `cdc-sync`, service `cdc-sync-current-state`): per table
 * (dimension `table`) and the largest over the tables (no `table` dimension; the alarm's): the time since the start of
 * the last successful run, or since the table was first tried when none succeeded yet.
 */

const text = z.string().check(z.minLength(1));
const positiveInt = z.pipe(z.coerce.number(), z.int().check(z.positive()));

/** Runtime configuration, set by lib/constructs/current-state-function.ts together with the grants. */
export const CurrentStateEnvSchema = z.object({
  /** The Glue database of the change-log and current-state tables. */
  GLUE_DATABASE: text,
  /** The Athena workgroup the statements run in (results location and encryption are enforced there). */
  ATHENA_WORKGROUP: text,
  /** `s3://<bucket>/current/`: each current-state table lives under `<location><table>/`. */
  CURRENT_STATE_LOCATION: z.string().check(z.regex(/^s3:\/\/[^/]+\/.*\/$/, 'must be s3://<bucket>/<prefix>/')),
  /** The change-log tables to keep current-state tables of, comma-separated Glue names. */
  CURRENT_STATE_TABLES: z.pipe(
    text,
    z.transform((v: string) => v.split(',').map((t) => t.trim())),
  ),
  /** The dedupe table: it holds each table's `cs#` state item. */
  STATE_TABLE_NAME: text,
  OVERLAP_SECONDS: positiveInt,
  LOOKBACK_HOURS: positiveInt,
  /** Tables merged at the same time. */
  PARALLEL_TABLES: z._default(positiveInt, 4),
  /** How long a run holds a table (the function's timeout). */
  LEASE_SECONDS: z._default(positiveInt, 900),
});

export type CurrentStateEnv = z.infer<typeof CurrentStateEnvSchema>;

/** What the schedules send. */
export const CurrentStateEventSchema = z.object({
  task: z._default(z.enum(['merge', 'maintain']), 'merge'),
  /** Only these change-log tables (an operator's manual run). */
  tables: z.optional(z.array(text)),
});

export type CurrentStateRunErrorCode =
  | 'QUERY_FAILED'
  | 'QUERY_TIMEOUT'
  | 'ATHENA_UNAVAILABLE'
  | 'CATALOG_UNAVAILABLE'
  | 'CATALOG_INVALID'
  | 'STATE_UNAVAILABLE'
  | 'TABLES_FAILED';

/**
 * A run that could not bring a table up to date. Retryable when the next run may succeed as it is (Athena, Glue or
 * DynamoDB unavailable, a query Athena calls retryable, a timeout); not when something must change first (a query
 * Athena rejects, a table the catalog describes wrongly).
 */
export class CurrentStateRunError extends CdcError {
  readonly retryable: boolean;
  constructor(
    readonly code: CurrentStateRunErrorCode,
    message: string,
    options: { retryable: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable;
  }
}

/** The outcome of one table in a run. */
export interface TableOutcome {
  table: string;
  /** `busy`: another run holds the table's lease. */
  status: 'applied' | 'maintained' | 'busy' | 'failed';
  statements: number;
  /**
   * Since when the table is behind (epoch ms): the start of its last successful run, or its first try when none
   * succeeded; CurrentStateFreshness is measured from it. Unknown when the run failed before it read the table's state.
   */
  currentAsOf?: number;
  error?: { code: string; message: string; retryable: boolean };
}

export interface CurrentStateResult {
  task: 'merge' | 'maintain';
  startedAt: number;
  tables: TableOutcome[];
}

export interface CurrentStateHandlerOptions {
  athena?: AthenaClient;
  glue?: GlueClient;
  dynamodb?: DynamoDBClient;
  clock?: () => number;
  /** How polling waits (tests pass one that does not). */
  sleep?: (ms: number) => Promise<void>;
}

/** Metric dimension value and state key of a table: its id (`<prefix>.<schema>.<table>`). */
const stateKey = (tableId: string) => `cs#${tableId}`;
const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const literal = (value: string) => `'${value.replaceAll("'", "''")}'`;

/** Hive types of the Glue columns (ours and Athena's for Iceberg tables) as the generator's column types. */
const FROM_HIVE: Record<string, CurrentStateType> = {
  boolean: 'boolean',
  int: 'int32',
  integer: 'int32',
  bigint: 'int64',
  double: 'double',
  date: 'date',
  timestamp: 'timestamp',
  string: 'string',
};

/** Time left for a statement to finish before the function must stop it, and the margin kept for bookkeeping. */
const STOP_MARGIN_MS = 20_000;
/** A table is not started with less time than this left. */
const START_MARGIN_MS = 60_000;
const THROTTLING = /Throttl|TooManyRequests|RequestLimitExceeded|ProvisionedThroughputExceeded/;

function awsError(code: CurrentStateRunErrorCode, what: string, error: unknown): CurrentStateRunError {
  if (error instanceof CurrentStateRunError) return error;
  const name = (error as { name?: string })?.name ?? 'Error';
  return new CurrentStateRunError(code, `${what}: ${name}: ${(error as Error)?.message ?? String(error)}`, {
    retryable: true,
    cause: error,
  });
}

/** The table's columns from its Glue columns: everything but the given metadata columns. */
function columnsOf(table: Table, meta: (name: string) => boolean, where: string) {
  return (table.StorageDescriptor?.Columns ?? [])
    .filter((c) => c.Name !== undefined && !meta(c.Name))
    .map((c) => {
      const type = FROM_HIVE[(c.Type ?? '').toLowerCase()];
      if (type === undefined) {
        throw new CurrentStateRunError('CATALOG_INVALID', `${where}: column ${c.Name} has type ${c.Type}`, {
          retryable: false,
        });
      }
      return { name: c.Name as string, type };
    });
}

const CURRENT_META = new Set(CURRENT_STATE_META.map((c) => c.name));
const CHANGE_LOG_META = new Set(META_COLUMNS);

export function createCurrentStateHandler(
  env: NodeJS.ProcessEnv = process.env,
  options: CurrentStateHandlerOptions = {},
) {
  const parsed = CurrentStateEnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');
    throw new ConfigError(`current-state configuration: ${problems}`);
  }
  const config = parsed.data;
  const logLevel = env.POWERTOOLS_LOG_LEVEL as LogLevel | undefined;
  const logger = new Logger({ serviceName: 'cdc-sync-current-state', ...(logLevel ? { logLevel } : {}) });
  const metrics = new Metrics({ namespace: 'cdc-sync', serviceName: 'cdc-sync-current-state' });
  const tracer = new Tracer({ serviceName: 'cdc-sync-current-state' });
  const athena = options.athena ?? new AthenaClient({});
  const glue = options.glue ?? new GlueClient({});
  const dynamodb = options.dynamodb ?? new DynamoDBClient({});
  const clock = options.clock ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const database = config.GLUE_DATABASE;
  // Queries quote names as Trino does; Athena's DDL is Hive's and takes backticks.
  const relation = (table: string) => `${quote(database)}.${quote(table)}`;
  const ddlRelation = (table: string) => `\`${database}\`.\`${table}\``;

  /** Runs one statement to its end; a failure or a timeout throws (a timed-out query is stopped first). */
  async function run(sql: string, token: string, deadline: number): Promise<QueryExecution> {
    let id: string | undefined;
    try {
      const started = await athena.send(
        new StartQueryExecutionCommand({
          QueryString: sql,
          WorkGroup: config.ATHENA_WORKGROUP,
          ClientRequestToken: token,
        }),
      );
      id = started.QueryExecutionId;
    } catch (error) {
      throw awsError('ATHENA_UNAVAILABLE', 'starting a query', error);
    }
    if (id === undefined) {
      throw new CurrentStateRunError('ATHENA_UNAVAILABLE', 'Athena returned no query id', { retryable: true });
    }
    for (let wait = 200; ; wait = Math.min(wait * 2, 2_000)) {
      let execution: QueryExecution | undefined;
      try {
        execution = (await athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }))).QueryExecution;
      } catch (error) {
        if (!THROTTLING.test((error as Error)?.name ?? '')) throw awsError('ATHENA_UNAVAILABLE', `query ${id}`, error);
      }
      const state = execution?.Status?.State;
      if (state === 'SUCCEEDED' && execution) return execution;
      if (state === 'FAILED' || state === 'CANCELLED') {
        const failure = execution?.Status?.AthenaError;
        throw new CurrentStateRunError(
          'QUERY_FAILED',
          `query ${id} ${state.toLowerCase()}: ${execution?.Status?.StateChangeReason ?? failure?.ErrorMessage ?? 'no reason given'}`,
          // Athena says whether the same query may succeed later (its own errors, throttling); a cancelled query may.
          { retryable: state === 'CANCELLED' || failure?.Retryable === true },
        );
      }
      if (clock() + wait > deadline) {
        await athena.send(new StopQueryExecutionCommand({ QueryExecutionId: id })).catch(() => undefined);
        const message = `query ${id} did not finish before the function's time ran out`;
        throw new CurrentStateRunError('QUERY_TIMEOUT', message, { retryable: true });
      }
      await sleep(wait);
    }
  }

  async function getTable(name: string): Promise<Table | undefined> {
    try {
      return (await glue.send(new GetTableCommand({ DatabaseName: database, Name: name }))).Table;
    } catch (error) {
      if ((error as Error)?.name === 'EntityNotFoundException') return undefined;
      throw awsError('CATALOG_UNAVAILABLE', `reading table ${database}.${name}`, error);
    }
  }

  /** The table the change-log table describes (its columns, key and current-state table from its parameters). */
  async function describe(changesTable: string) {
    const table = await getTable(changesTable);
    const where = `${database}.${changesTable}`;
    const params = table?.Parameters ?? {};
    const tableId = params['cdc_sync.table_id'];
    const currentTable = params['cdc_sync.current_table'];
    const deletedTable = params['cdc_sync.deleted_table'];
    const keyColumns = (params['cdc_sync.key_columns'] ?? '').split(',').filter((k) => k !== '');
    if (
      table === undefined ||
      tableId === undefined ||
      currentTable === undefined ||
      deletedTable === undefined ||
      keyColumns.length === 0
    ) {
      throw new CurrentStateRunError(
        'CATALOG_INVALID',
        `${where} is missing or names no current-state table and key (cdc_sync.* parameters): deploy the data stack`,
        { retryable: false },
      );
    }
    const columns = columnsOf(table, (name) => CHANGE_LOG_META.has(name), where);
    const next: CurrentStateTable = { table: tableId, keyColumns, columns };
    return { next, currentTable, deletedTable };
  }

  type Lease = { acquired: true; appliedThrough?: number; createdAt: number } | { acquired: false; since?: number };

  async function lease(tableId: string, runId: string, now: number): Promise<Lease> {
    const number = (v: AttributeValue | undefined) => (v?.N === undefined ? undefined : Number(v.N));
    let item: Record<string, AttributeValue>;
    try {
      const response = await dynamodb.send(
        new UpdateItemCommand({
          TableName: config.STATE_TABLE_NAME,
          Key: { pk: { S: stateKey(tableId) } },
          UpdateExpression: 'SET createdAt = if_not_exists(createdAt, :now), leaseId = :run, leaseUntil = :until',
          ConditionExpression: 'attribute_not_exists(leaseUntil) OR leaseUntil < :now',
          ExpressionAttributeValues: {
            ':now': { N: String(now) },
            ':run': { S: runId },
            ':until': { N: String(now + config.LEASE_SECONDS * 1000) },
          },
          ReturnValues: 'ALL_NEW',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      item = response.Attributes ?? {};
    } catch (error) {
      if ((error as Error)?.name !== 'ConditionalCheckFailedException') {
        throw awsError('STATE_UNAVAILABLE', `taking the lease of ${tableId}`, error);
      }
      const held = (error as { Item?: Record<string, AttributeValue> }).Item ?? {};
      const since = number(held.appliedThrough) ?? number(held.createdAt);
      return since === undefined ? { acquired: false } : { acquired: false, since };
    }
    const appliedThrough = number(item.appliedThrough);
    return {
      acquired: true,
      createdAt: number(item.createdAt) ?? now,
      ...(appliedThrough === undefined ? {} : { appliedThrough }),
    };
  }

  /** Gives the lease back; with a position, moves it forward (never back) in the same write. */
  async function release(tableId: string, runId: string, appliedThrough?: number): Promise<boolean> {
    const values: Record<string, AttributeValue> = { ':run': { S: runId } };
    let update = 'REMOVE leaseId, leaseUntil';
    let condition = 'leaseId = :run';
    if (appliedThrough !== undefined) {
      values[':through'] = { N: String(appliedThrough) };
      update = `SET appliedThrough = :through ${update}`;
      condition += ' AND (attribute_not_exists(appliedThrough) OR appliedThrough < :through)';
    }
    try {
      await dynamodb.send(
        new UpdateItemCommand({
          TableName: config.STATE_TABLE_NAME,
          Key: { pk: { S: stateKey(tableId) } },
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error)?.name === 'ConditionalCheckFailedException') return false;
      throw awsError('STATE_UNAVAILABLE', `recording the position of ${tableId}`, error);
    }
  }

  /** The statements that bring the table's Iceberg tables into being or into the change log's shape. */
  async function prepare(next: CurrentStateTable, currentTable: string, deletedTable: string) {
    const statements: string[] = [];
    const location = (table: string) => `${config.CURRENT_STATE_LOCATION}${table}/`;
    const [current, deleted] = await Promise.all([getTable(currentTable), getTable(deletedTable)]);
    let table = next;
    if (current === undefined) {
      statements.push(
        createTableStatement(next, { relation: ddlRelation(currentTable), location: location(currentTable) }, 'athena'),
      );
    } else {
      const shape: CurrentStateTable = {
        ...next,
        columns: columnsOf(current, (name) => CURRENT_META.has(name), `${database}.${currentTable}`),
      };
      // The Glue change-log table is the table's whole current shape: a column dropped at the source goes here too.
      const evolved = evolveTable(shape, next, ddlRelation(currentTable), 'athena', { dropMissing: true });
      statements.push(...evolved.statements);
      table = evolved.table;
    }
    if (deleted === undefined) {
      statements.push(
        createDeletedTableStatement(
          { relation: ddlRelation(deletedTable), location: location(deletedTable) },
          'athena',
        ),
      );
    }
    return { statements, table };
  }

  /** The change-log relation a range reads: only the commit days its changes can have. */
  function changesRelation(changesTable: string, fromProcessedAt: number | undefined): string {
    if (fromProcessedAt === undefined) return relation(changesTable);
    const day = new Date(fromProcessedAt - config.LOOKBACK_HOURS * 3_600_000).toISOString().slice(0, 10);
    return `(SELECT * FROM ${relation(changesTable)} WHERE dt >= ${literal(day)})`;
  }

  async function mergeTable(
    changesTable: string,
    runId: string,
    startedAt: number,
    deadline: number,
  ): Promise<TableOutcome> {
    const { next, currentTable, deletedTable } = await describe(changesTable);
    const tableId = next.table;
    const held = await lease(tableId, runId, startedAt);
    if (!held.acquired) {
      return { table: tableId, status: 'busy', statements: 0, ...(held.since ? { currentAsOf: held.since } : {}) };
    }
    let count = 0;
    try {
      const { statements: setup, table } = await prepare(next, currentTable, deletedTable);
      const from = held.appliedThrough === undefined ? undefined : held.appliedThrough - config.OVERLAP_SECONDS * 1000;
      const relations: MergeRelations = {
        changesRelation: changesRelation(changesTable, from),
        targetRelation: relation(currentTable),
        deletedRelation: relation(deletedTable),
      };
      const range = { ...(from === undefined ? {} : { fromProcessedAt: from }), toProcessedAt: startedAt };
      const statements = [...setup, ...mergeStatements(table, relations, range, 'athena')];
      let scanned = 0;
      for (const [i, sql] of statements.entries()) {
        const execution = await run(sql, `${runId}-${tableId}-${i}`.slice(0, 128), deadline);
        scanned += execution.Statistics?.DataScannedInBytes ?? 0;
        count++;
      }
      await release(tableId, runId, startedAt);
      metrics.addDimension('table', tableId);
      metrics.addMetric('CurrentStateBytesScanned', MetricUnit.Bytes, scanned);
      metrics.addMetric('CurrentStateMergeMs', MetricUnit.Milliseconds, clock() - startedAt);
      metrics.publishStoredMetrics();
      return { table: tableId, status: 'applied', statements: count, currentAsOf: startedAt };
    } catch (error) {
      await release(tableId, runId).catch(() => false);
      const since = held.appliedThrough ?? held.createdAt;
      return {
        table: tableId,
        status: 'failed',
        statements: count,
        currentAsOf: since,
        error: describeError(error),
      };
    }
  }

  async function maintainTable(
    changesTable: string,
    runId: string,
    startedAt: number,
    deadline: number,
  ): Promise<TableOutcome> {
    const { next, currentTable, deletedTable } = await describe(changesTable);
    const held = await lease(next.table, runId, startedAt);
    if (!held.acquired) return { table: next.table, status: 'busy', statements: 0 };
    let count = 0;
    try {
      for (const name of [currentTable, deletedTable]) {
        if ((await getTable(name)) === undefined) continue;
        // Glue names here are lower-case letters, digits and `_`: Athena's examples leave such names unquoted.
        for (const sql of [`OPTIMIZE ${database}.${name} REWRITE DATA USING BIN_PACK`, `VACUUM ${database}.${name}`]) {
          await run(sql, `${runId}-${name}-${count}`.slice(0, 128), deadline);
          count++;
        }
      }
      await release(next.table, runId);
      return { table: next.table, status: 'maintained', statements: count };
    } catch (error) {
      await release(next.table, runId).catch(() => false);
      return { table: next.table, status: 'failed', statements: count, error: describeError(error) };
    }
  }

  const handle = async (event: unknown, context: Context): Promise<CurrentStateResult> => {
    const parsedEvent = CurrentStateEventSchema.safeParse(event ?? {});
    if (!parsedEvent.success) throw new ConfigError(`current-state event: ${parsedEvent.error.message}`);
    const { task, tables: only } = parsedEvent.data;
    const tables =
      only === undefined ? config.CURRENT_STATE_TABLES : config.CURRENT_STATE_TABLES.filter((t) => only.includes(t));
    const startedAt = clock();
    const runId = randomUUID();
    const deadline = startedAt + context.getRemainingTimeInMillis() - STOP_MARGIN_MS;
    const outcomes: TableOutcome[] = new Array(tables.length);
    let nextIndex = 0;
    const worker = async () => {
      for (let i = nextIndex++; i < tables.length; i = nextIndex++) {
        const changesTable = tables[i] as string;
        if (clock() + START_MARGIN_MS > deadline) {
          const error = new CurrentStateRunError('QUERY_TIMEOUT', 'no time left in the run to start it', {
            retryable: true,
          });
          outcomes[i] = { table: changesTable, status: 'failed', statements: 0, error: describeError(error) };
          continue;
        }
        const work = task === 'merge' ? mergeTable : maintainTable;
        outcomes[i] = await work(changesTable, runId, startedAt, deadline).catch((error: unknown) => ({
          table: changesTable,
          status: 'failed' as const,
          statements: 0,
          error: describeError(error),
        }));
      }
    };
    await Promise.all(Array.from({ length: Math.min(config.PARALLEL_TABLES, tables.length) }, worker));

    if (task === 'merge') recordFreshness(outcomes);
    for (const outcome of outcomes) {
      if (outcome.status === 'failed')
        logger.error('table not brought up to date; the next run tries again', { ...outcome });
      else logger.info(`table ${outcome.status}`, { ...outcome });
    }
    const failed = outcomes.filter((o) => o.status === 'failed');
    if (failed.length > 0) {
      throw new CurrentStateRunError(
        'TABLES_FAILED',
        `${failed.length} of ${outcomes.length} tables failed: ${failed.map((o) => `${o.table} (${o.error?.code}: ${o.error?.message})`).join('; ')}`,
        { retryable: failed.every((o) => o.error?.retryable !== false) },
      );
    }
    return { task, startedAt, tables: outcomes };
  };

  /** CurrentStateFreshness per table and its maximum, from every table with a known position or first try. */
  function recordFreshness(outcomes: readonly TableOutcome[]): void {
    const now = clock();
    let oldest: number | undefined;
    for (const outcome of outcomes) {
      if (outcome.currentAsOf === undefined) continue;
      const seconds = Math.max(0, (now - outcome.currentAsOf) / 1000);
      metrics.addDimension('table', outcome.table);
      metrics.addMetric('CurrentStateFreshness', MetricUnit.Seconds, seconds);
      metrics.publishStoredMetrics();
      oldest = Math.max(oldest ?? 0, seconds);
    }
    if (oldest !== undefined) metrics.addMetric('CurrentStateFreshness', MetricUnit.Seconds, oldest);
  }

  return middy(handle)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics));
}
