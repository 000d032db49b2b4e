import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { hasUnknownCommit } from '../core/dedupe';
import { SchemaHistoryError } from '../core/errors';
import type {
  ColumnChange,
  LatestSchema,
  ReconciliationState,
  SchemaClassification,
  SchemaRegistry,
  SchemaVersionRecord,
} from '../core/schema-history';
import type { SchemaColumn } from '../core/types';

export interface DynamoSchemaRegistryOptions {
  /** The checkpoint table (partition key `pk`): schema items live beside the checkpoints, under their own prefix. */
  tableName: string;
}

/** `schema#<tableId>`: the table's latest version. */
export function latestSchemaKey(table: string): string {
  return `schema#${table}`;
}

/** `schema#<tableId>#v<N>`: one version of the table. */
export function schemaVersionKey(table: string, version: number): string {
  return `schema#${table}#v${version}`;
}

const S = (s: string): AttributeValue => ({ S: s });
const N = (n: number): AttributeValue => ({ N: String(n) });

function versionItem(r: SchemaVersionRecord): Record<string, AttributeValue> {
  const item: Record<string, AttributeValue> = {
    pk: S(schemaVersionKey(r.table, r.version)),
    table: S(r.table),
    version: N(r.version),
    fingerprint: S(r.fingerprint),
    columns: S(JSON.stringify(r.columns)),
    order: S(r.order),
    position: S(JSON.stringify(r.position)),
    classification: S(r.classification),
    changes: S(JSON.stringify(r.changes)),
    reconciliation: S(r.reconciliation),
    dataCollection: S(r.dataCollection),
    topicPrefix: S(r.topicPrefix),
    at: N(r.at),
  };
  if (r.claimant !== undefined) item.claimant = S(r.claimant);
  if (r.claimedUntil !== undefined) item.claimedUntil = N(r.claimedUntil);
  if (r.signalId !== undefined) item.signalId = S(r.signalId);
  return item;
}

function fromVersionItem(item: Record<string, AttributeValue>): SchemaVersionRecord {
  const record: SchemaVersionRecord = {
    table: item.table?.S ?? '',
    version: Number(item.version?.N ?? 0),
    fingerprint: item.fingerprint?.S ?? '',
    columns: JSON.parse(item.columns?.S ?? '[]') as SchemaColumn[],
    order: item.order?.S ?? '',
    position: JSON.parse(item.position?.S ?? '{}') as Record<string, string>,
    classification: (item.classification?.S ?? 'unreconcilable') as SchemaClassification,
    changes: JSON.parse(item.changes?.S ?? '[]') as ColumnChange[],
    reconciliation: (item.reconciliation?.S ?? 'not-needed') as ReconciliationState,
    dataCollection: item.dataCollection?.S ?? '',
    topicPrefix: item.topicPrefix?.S ?? '',
    at: Number(item.at?.N ?? 0),
  };
  if (item.claimant?.S) record.claimant = item.claimant.S;
  if (item.claimedUntil?.N) record.claimedUntil = Number(item.claimedUntil.N);
  if (item.signalId?.S) record.signalId = item.signalId.S;
  return record;
}

function isConditionFailure(error: unknown): boolean {
  const name = (error as Error)?.name;
  if (name === 'ConditionalCheckFailedException') return true;
  if (name !== 'TransactionCanceledException') return false;
  const reasons = (error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? [];
  return reasons.some((r) => r.Code === 'ConditionalCheckFailed');
}

/**
 * The schema registry in the checkpoint table. The latest item moves only forward: a transaction updates it on the
 * condition that it is still at the version the caller read, that the new order is greater (byte-wise string
 * comparison, as DynamoDB compares strings) and that the fingerprint differs, and creates the version item with it
 * (never overwriting one; an order without its commit part is exempt from the order condition, see advance). So a
 * lagging partition can never move the latest back, and of two lanes registering the
 * same change one wins and the other re-reads.
 */
export class DynamoSchemaRegistry implements SchemaRegistry {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly options: DynamoSchemaRegistryOptions,
  ) {}

  async latest(table: string): Promise<LatestSchema | undefined> {
    const item = await this.get(latestSchemaKey(table), `reading the latest schema of ${table}`);
    if (!item) return undefined;
    return {
      version: Number(item.version?.N ?? 0),
      fingerprint: item.fingerprint?.S ?? '',
      order: item.order?.S ?? '',
      columns: JSON.parse(item.columns?.S ?? '[]') as SchemaColumn[],
    };
  }

  async version(table: string, version: number): Promise<SchemaVersionRecord | undefined> {
    const item = await this.get(schemaVersionKey(table, version), `reading schema version ${version} of ${table}`);
    return item ? fromVersionItem(item) : undefined;
  }

  async advance(table: string, expected: number, record: SchemaVersionRecord): Promise<boolean> {
    // Every attribute by placeholder: DynamoDB reserves many plain words (`columns`, `order`, ...).
    const names: Record<string, string> = {
      '#version': 'version',
      '#order': 'order',
      '#fingerprint': 'fingerprint',
      '#columns': 'columns',
      '#updatedAt': 'updatedAt',
    };
    // An order without its commit part (the first transaction after a connector start) sorts below every known one
    // yet may be newer (SchemaHistory decides): the version condition alone guards it — the caller compared with the
    // very item it read at `expected`.
    const condition =
      expected === 0
        ? 'attribute_not_exists(pk)'
        : hasUnknownCommit(record.order)
          ? '#version = :expected AND #fingerprint <> :fingerprint'
          : '#version = :expected AND #order < :order AND #fingerprint <> :fingerprint';
    const values: Record<string, AttributeValue> = {
      ':version': N(record.version),
      ':order': S(record.order),
      ':fingerprint': S(record.fingerprint),
      ':columns': S(JSON.stringify(record.columns)),
      ':at': N(record.at),
    };
    if (expected !== 0) values[':expected'] = N(expected);
    try {
      await this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.options.tableName,
                Key: { pk: S(latestSchemaKey(table)) },
                UpdateExpression:
                  'SET #version = :version, #order = :order, #fingerprint = :fingerprint, #columns = :columns, #updatedAt = :at',
                ConditionExpression: condition,
                ExpressionAttributeNames: names,
                ExpressionAttributeValues: values,
              },
            },
            {
              Put: {
                TableName: this.options.tableName,
                Item: versionItem(record),
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
          ],
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw this.unavailable(`registering schema version ${record.version} of ${table}`, error);
    }
  }

  async claimSignal(table: string, version: number, claimant: string, now: number, until: number): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.options.tableName,
          Key: { pk: S(schemaVersionKey(table, version)) },
          UpdateExpression: 'SET #claimant = :claimant, #claimedUntil = :until',
          ConditionExpression:
            '#reconciliation = :pending AND (attribute_not_exists(#claimant) OR #claimant = :claimant OR #claimedUntil < :now)',
          ExpressionAttributeNames: {
            '#claimant': 'claimant',
            '#claimedUntil': 'claimedUntil',
            '#reconciliation': 'reconciliation',
          },
          ExpressionAttributeValues: {
            ':claimant': S(claimant),
            ':until': N(until),
            ':now': N(now),
            ':pending': S('pending'),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw this.unavailable(`claiming the signal of schema version ${version} of ${table}`, error);
    }
  }

  async markSignalled(table: string, version: number, signalId: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.options.tableName,
          Key: { pk: S(schemaVersionKey(table, version)) },
          UpdateExpression: 'SET #reconciliation = :signalled, #signalId = :id',
          ConditionExpression: '#reconciliation = :pending',
          ExpressionAttributeNames: { '#reconciliation': 'reconciliation', '#signalId': 'signalId' },
          ExpressionAttributeValues: { ':signalled': S('signalled'), ':pending': S('pending'), ':id': S(signalId) },
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) return; // someone else marked it
      throw this.unavailable(`marking schema version ${version} of ${table} signalled`, error);
    }
  }

  private async get(pk: string, what: string): Promise<Record<string, AttributeValue> | undefined> {
    try {
      const response = await this.client.send(
        new GetItemCommand({ TableName: this.options.tableName, Key: { pk: S(pk) }, ConsistentRead: true }),
      );
      return response.Item;
    } catch (error) {
      throw this.unavailable(what, error);
    }
  }

  private unavailable(what: string, error: unknown): SchemaHistoryError {
    return new SchemaHistoryError('SCHEMA_REGISTRY_UNAVAILABLE', `${what}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
