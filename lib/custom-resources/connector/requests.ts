import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';

/**
 * Which CloudFormation request currently owns each connector, in a DynamoDB table (one item per connector name).
 *
 * A Provider framework waiter keeps polling after CloudFormation has given up on its request: when another resource
 * fails, CloudFormation cancels the in-flight update ("Resource update cancelled") and rolls back at once, sending a
 * new Update or Delete for the same connector while the old waiter is still running. Without a shared record the old
 * waiter would go on reconciling towards its own spec, e.g. re-create the connector the rollback just deleted. So
 * every request claims the connector in onEvent (requests arrive in CloudFormation's order), and every poll checks
 * that its request is still the current one before it acts.
 *
 * The owner (stack and logical id) stops a Delete from another logical resource (a renamed construct, whose new
 * resource already adopted the connector) from deleting it.
 */
export interface ConnectorRequest {
  readonly connector: string;
  readonly requestId: string;
  readonly requestType: 'Create' | 'Update' | 'Delete';
  /** `<StackId>|<LogicalResourceId>` of the custom resource that sent the request. */
  readonly owner: string;
  /** Epoch ms of the claim. */
  readonly claimedAt: number;
  /** ARNs of the UpdateConnector operations this request started, oldest first. */
  readonly operations: readonly string[];
}

export type ClaimResult = { readonly claimed: true } | { readonly claimed: false; readonly owner: string };

export class ConnectorRequests {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  /**
   * Makes `request` the connector's current request. A Create or Update always takes the connector over; a Delete
   * only claims a connector nobody recorded or its own logical resource owns, and otherwise reports the owner.
   */
  async claim(request: Omit<ConnectorRequest, 'operations'>): Promise<ClaimResult> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            connector: { S: request.connector },
            requestId: { S: request.requestId },
            requestType: { S: request.requestType },
            owner: { S: request.owner },
            claimedAt: { N: String(request.claimedAt) },
            operations: { L: [] },
          },
          ...(request.requestType === 'Delete'
            ? {
                ConditionExpression: 'attribute_not_exists(connector) OR #owner = :owner',
                ExpressionAttributeNames: { '#owner': 'owner' },
                ExpressionAttributeValues: { ':owner': { S: request.owner } },
              }
            : {}),
        }),
      );
      return { claimed: true };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const current = await this.current(request.connector);
      return { claimed: false, owner: current?.owner ?? 'unknown' };
    }
  }

  /** The connector's current request (strongly consistent), if any was ever claimed. */
  async current(connector: string): Promise<ConnectorRequest | undefined> {
    const { Item: item } = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: { connector: { S: connector } }, ConsistentRead: true }),
    );
    if (item === undefined) return undefined;
    return {
      connector,
      requestId: item.requestId?.S ?? '',
      requestType: (item.requestType?.S ?? 'Update') as ConnectorRequest['requestType'],
      owner: item.owner?.S ?? '',
      claimedAt: Number(item.claimedAt?.N ?? 0),
      operations: (item.operations?.L ?? []).flatMap((value) => (value.S === undefined ? [] : [value.S])),
    };
  }

  /** Appends an operation to the request's record; false when another request has claimed the connector since. */
  async recordOperation(connector: string, requestId: string, operationArn: string): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { connector: { S: connector } },
          UpdateExpression: 'SET operations = list_append(if_not_exists(operations, :empty), :operation)',
          ConditionExpression: 'requestId = :requestId',
          ExpressionAttributeValues: {
            ':empty': { L: [] },
            ':operation': { L: [{ S: operationArn }] },
            ':requestId': { S: requestId },
          },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
