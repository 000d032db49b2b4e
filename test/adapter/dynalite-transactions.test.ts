import {
  type AttributeValue,
  CreateTableCommand,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  type TransactWriteItem,
  TransactWriteItemsCommand,
} from '@aws-sdk/client-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { useLocalServices } from '../support/local';

// The local DynamoDB (dynalite) with the TransactWriteItems that tools/local/dynalite-transactions.ts adds.
const services = useLocalServices();
const TABLE = 'tx-test';
const ddb = () => services().clients.dynamodb;
const S = (s: string): AttributeValue => ({ S: s });
const N = (n: number): AttributeValue => ({ N: String(n) });

beforeAll(async () => {
  await ddb().send(
    new CreateTableCommand({
      TableName: TABLE,
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
});

const get = async (pk: string) =>
  (await ddb().send(new GetItemCommand({ TableName: TABLE, Key: { pk: S(pk) }, ConsistentRead: true }))).Item;
const put = (pk: string, attributes: Record<string, AttributeValue> = {}) =>
  ddb().send(new PutItemCommand({ TableName: TABLE, Item: { pk: S(pk), ...attributes } }));
/** An Update action that adds 1 to (or takes 1 from) the item's `n`, conditionally when given a condition. */
const step = (pk: string, sign: '+' | '-', condition?: string): TransactWriteItem => ({
  Update: {
    TableName: TABLE,
    Key: { pk: S(pk) },
    UpdateExpression: `SET n = n ${sign} :one`,
    ...(condition ? { ConditionExpression: condition } : {}),
    ExpressionAttributeValues: { ':one': N(1) },
  },
});
const transact = (items: TransactWriteItem[]) => ddb().send(new TransactWriteItemsCommand({ TransactItems: items }));
const cancellation = async (items: TransactWriteItem[]) => {
  const error = await transact(items).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TransactionCanceledException);
  return error as TransactionCanceledException;
};

describe('dynalite TransactWriteItems (local extension)', () => {
  it('applies Put, Update, Delete and ConditionCheck actions together', async () => {
    // Arrange
    await put('a1', { n: N(1) });
    await put('a2', { n: N(5) });
    await put('a3');
    // Act
    await transact([
      { Put: { TableName: TABLE, Item: { pk: S('a0'), n: N(0) }, ConditionExpression: 'attribute_not_exists(pk)' } },
      step('a1', '+', 'n = :one'),
      { Delete: { TableName: TABLE, Key: { pk: S('a3') } } },
      {
        ConditionCheck: {
          TableName: TABLE,
          Key: { pk: S('a2') },
          ConditionExpression: '#n > :four',
          ExpressionAttributeNames: { '#n': 'n' },
          ExpressionAttributeValues: { ':four': N(4) },
        },
      },
    ]);
    // Assert
    expect(await get('a0')).toEqual({ pk: S('a0'), n: N(0) });
    expect(await get('a1')).toEqual({ pk: S('a1'), n: N(2) });
    expect(await get('a2')).toEqual({ pk: S('a2'), n: N(5) });
    expect(await get('a3')).toBeUndefined();
  });

  it('applies nothing when one condition fails, and gives one cancellation reason per action', async () => {
    // Arrange
    await put('b1', { version: N(1) });
    await put('b2', { version: N(3) });
    // Act
    const error = await cancellation([
      {
        Put: {
          TableName: TABLE,
          Item: { pk: S('b1'), version: N(2) },
          ConditionExpression: 'version = :v',
          ExpressionAttributeValues: { ':v': N(1) },
        },
      },
      {
        Put: {
          TableName: TABLE,
          Item: { pk: S('b2'), version: N(2) },
          ConditionExpression: 'version = :v',
          ExpressionAttributeValues: { ':v': N(1) },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      },
      { Delete: { TableName: TABLE, Key: { pk: S('b1-missing') }, ConditionExpression: 'attribute_exists(pk)' } },
    ]);
    // Assert
    expect(error.CancellationReasons).toEqual([
      { Code: 'None' },
      {
        Code: 'ConditionalCheckFailed',
        Message: 'The conditional request failed',
        Item: { pk: S('b2'), version: N(3) },
      },
      { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' },
    ]);
    expect(await get('b1')).toEqual({ pk: S('b1'), version: N(1) });
    expect(await get('b2')).toEqual({ pk: S('b2'), version: N(3) });
  });

  it('refuses two actions on one item, more than 100 actions, a bad expression and an unknown table', async () => {
    const refusal = (items: TransactWriteItem[]) =>
      transact(items).then(
        () => 'accepted',
        (e: Error) => `${e.name}: ${e.message}`,
      );
    expect(
      await refusal([
        { Put: { TableName: TABLE, Item: { pk: S('c1') } } },
        { Delete: { TableName: TABLE, Key: { pk: S('c1') } } },
      ]),
    ).toBe('ValidationException: Transaction request cannot include multiple operations on one item');
    expect(
      await refusal(Array.from({ length: 101 }, (_, i) => ({ Put: { TableName: TABLE, Item: { pk: S(`c${i}`) } } }))),
    ).toMatch(/^ValidationException: .*less than or equal to 100/);
    expect(
      await refusal([
        { Put: { TableName: TABLE, Item: { pk: S('c2') } } },
        { Put: { TableName: TABLE, Item: { pk: S('c3') }, ConditionExpression: 'version = = 1' } },
      ]),
    ).toMatch(/^ValidationException: /);
    expect(await refusal([{ Put: { TableName: 'tx-missing', Item: { pk: S('c4') } } }])).toMatch(
      /^ResourceNotFoundException/,
    );
    expect(await get('c2')).toBeUndefined();
  });

  it('keeps concurrent transactions on the same items serializable (no lost update, no overdraft)', async () => {
    // Arrange: 20 units in "from"; 30 transfers of 1 race each other
    await put('from', { n: N(20) });
    await put('to', { n: N(0) });
    const transfer = () =>
      transact([step('from', '-', 'n >= :one'), step('to', '+')]).then(
        () => true,
        (e: Error) => {
          if (e.name !== 'TransactionCanceledException') throw e;
          return false;
        },
      );
    // Act
    const outcomes = await Promise.all(Array.from({ length: 30 }, transfer));
    // Assert
    expect(outcomes.filter(Boolean)).toHaveLength(20);
    expect(await get('from')).toEqual({ pk: S('from'), n: N(0) });
    expect(await get('to')).toEqual({ pk: S('to'), n: N(20) });
  });
});
