import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateConnectorCommand,
  DeleteConnectorCommand,
  DescribeConnectorCommand,
  DescribeConnectorOperationCommand,
  KafkaConnectClient,
  type KafkaConnectClientConfig,
  ListConnectorsCommand,
  UpdateConnectorCommand,
} from '@aws-sdk/client-kafkaconnect';
import { generateAuthToken } from 'aws-msk-iam-sasl-signer-js';
import { mockClient } from 'aws-sdk-client-mock';
import dynalite from 'dynalite';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { environmentConfig } from '../../lib/config';
import { secretNameFromArn, tableIncludeList } from '../../lib/constructs/debezium-config';
import {
  type Dependencies,
  handleIsComplete,
  handleOnEvent,
  kafkaConnectClient,
  type ProviderEvent,
  parseSpec,
} from '../../lib/custom-resources/connector';
import {
  type ConnectorSpec,
  type ConnectorState,
  decide,
  type ObservedConnector,
  specDescription,
} from '../../lib/custom-resources/connector/reconcile';
import { ConnectorRequests } from '../../lib/custom-resources/connector/requests';
import { mskIamTokenProvider, planTopics } from '../../lib/custom-resources/topics';

const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

const spec: ConnectorSpec = {
  connectorName: 'cdc-sync-dev-orders',
  connectorConfiguration: { 'connector.class': 'io.debezium.connector.postgresql.PostgresConnector', 'slot.name': 's' },
  capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 1 } },
  kafkaConnectVersion: '3.7.x',
  kafkaCluster: {
    apacheKafkaCluster: { bootstrapServers: 'b-1:9098', vpc: { securityGroups: ['sg'], subnets: ['s'] } },
  },
  kafkaClusterClientAuthentication: { authenticationType: 'IAM' },
  kafkaClusterEncryptionInTransit: { encryptionType: 'TLS' },
  logDelivery: { workerLogDelivery: { cloudWatchLogs: { enabled: true, logGroup: 'logs' } } },
  plugins: [{ customPlugin: { customPluginArn: 'arn:plugin', revision: 1 } }],
  serviceExecutionRoleArn: 'arn:role',
  workerConfiguration: { workerConfigurationArn: 'arn:worker', revision: 1 },
};

const running = (overrides: Partial<Extract<ObservedConnector, { arn: string }>> = {}): ObservedConnector => ({
  state: 'RUNNING',
  arn: 'arn:connector',
  currentVersion: 'v1',
  description: specDescription(spec),
  configuration: spec.connectorConfiguration,
  capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 1 } },
  ...overrides,
});

describe('connector reconcile step', () => {
  it.each<[string, 'Create' | 'Update' | 'Delete', ObservedConnector, string]>([
    ['creates a missing connector', 'Create', { state: 'ABSENT' }, 'create'],
    ['waits while it is being created', 'Create', running({ state: 'CREATING' }), 'wait'],
    ['is done when the running connector matches', 'Update', running(), 'done'],
    [
      'updates the configuration in place',
      'Update',
      running({ configuration: { ...spec.connectorConfiguration, 'slot.name': 'old' } }),
      'update-configuration',
    ],
    [
      'updates the capacity in place',
      'Update',
      running({ capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 2 } } }),
      'update-capacity',
    ],
    ['re-creates on an immutable change', 'Update', running({ description: 'cdc-sync spec other' }), 'delete'],
    ['waits while the old one is deleted', 'Update', running({ state: 'DELETING' }), 'wait'],
    ['fails when the wanted spec itself failed', 'Update', running({ state: 'FAILED', stateMessage: 'boom' }), 'fail'],
    [
      'retries a failed connector when the spec changed',
      'Update',
      running({ state: 'FAILED', configuration: { 'connector.class': 'x' } }),
      'delete',
    ],
    ['deletes on stack deletion', 'Delete', running(), 'delete'],
    ['is done deleting when the connector is gone', 'Delete', { state: 'ABSENT' }, 'done'],
  ])('%s', (_case, requestType, observed, kind) => {
    expect(decide(requestType, requestType === 'Delete' ? undefined : spec, observed).kind).toBe(kind);
  });

  it.each([
    [
      'configuration',
      running({ configuration: { ...spec.connectorConfiguration, 'slot.name': 'old' } }),
      { configurationUpdated: true, capacityUpdated: false },
    ],
    [
      'capacity',
      running({ capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 2 } } }),
      { configurationUpdated: false, capacityUpdated: true },
    ],
  ])('fails rather than updating the %s twice in one request', (_what, observed, history) => {
    expect(decide('Update', spec, observed, history).kind).toBe('fail');
  });

  it('waits while the connector restarts, and reports a paused connector instead of updating it', () => {
    expect(decide('Update', spec, running({ state: 'RESTARTING' })).kind).toBe('wait');
    expect(decide('Update', spec, running({ state: 'PAUSED' }))).toMatchObject({ kind: 'fail', reason: /PAUSED/ });
  });

  it('treats connector.class as immutable (UpdateConnector cannot change it)', () => {
    const other = { ...spec, connectorConfiguration: { ...spec.connectorConfiguration, 'connector.class': 'x' } };
    expect(specDescription(other)).not.toBe(specDescription(spec));
    const capacityOnly = { ...spec, capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 4 } } };
    expect(specDescription(capacityOnly)).toBe(specDescription(spec));
  });
});

describe('connector custom resource handler', () => {
  // The request records live in a real (local) DynamoDB; MSK Connect has no local stand-in, so its client is mocked.
  let server: Server;
  let dynamodb: DynamoDBClient;
  const TABLE = 'connector-requests';
  beforeAll(async () => {
    server = dynalite({ createTableMs: 0 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    dynamodb = new DynamoDBClient({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    await dynamodb.send(
      new CreateTableCommand({
        TableName: TABLE,
        KeySchema: [{ AttributeName: 'connector', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'connector', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  });
  afterAll(async () => {
    dynamodb?.destroy();
    await new Promise((resolve) => server?.close(resolve));
  });

  // Each test works on its own connector name, so the records of one never meet another's.
  let counter = 0;
  const STACK = 'arn:aws:cloudformation:eu-west-1:111111111111:stack/cdc-sync-dev-streaming/1';
  function fixture(connect = new KafkaConnectClient({ region: 'eu-west-1', credentials: LOCAL_CREDENTIALS })) {
    counter += 1;
    const wanted: ConnectorSpec = { ...spec, connectorName: `cdc-sync-dev-orders-${counter}` };
    const requests = new ConnectorRequests(dynamodb, TABLE);
    const deps: Dependencies = { connect, requests, now: () => 1_700_000_000_000 };
    const event = (
      RequestType: 'Create' | 'Update' | 'Delete',
      RequestId: string,
      LogicalResourceId = 'ConnectConnectororders',
    ): ProviderEvent => ({
      RequestType,
      RequestId,
      StackId: STACK,
      LogicalResourceId,
      PhysicalResourceId: RequestType === 'Create' ? undefined : wanted.connectorName,
      ResourceProperties: { Spec: JSON.stringify(wanted) },
    });
    return { wanted, requests, deps, event, name: wanted.connectorName };
  }
  const listing = (name: string, state: ConnectorState = 'RUNNING', version = 'v7') => ({
    connectors: [{ connectorArn: 'arn:c', connectorName: name, connectorState: state, currentVersion: version }],
  });
  const described = (wanted: ConnectorSpec, configuration = wanted.connectorConfiguration) => ({
    connectorState: 'RUNNING' as const,
    currentVersion: 'v7',
    connectorDescription: specDescription(wanted),
    connectorConfiguration: { ...configuration },
    capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 1 } },
  });
  /** Mocks the API reporting the connector running with an older slot name: its configuration needs an update. */
  function mockRunningWithOldSlot(connect: KafkaConnectClient, wanted: ConnectorSpec) {
    const api = mockClient(connect);
    api.on(ListConnectorsCommand).resolves(listing(wanted.connectorName));
    api
      .on(DescribeConnectorCommand)
      .resolves(described(wanted, { ...wanted.connectorConfiguration, 'slot.name': 'old' }));
    return api;
  }

  it('names the physical resource after the connector and claims the connector for the request', async () => {
    const { deps, event, requests, name } = fixture();
    await expect(handleOnEvent(event('Create', 'r1'), deps)).resolves.toEqual({ PhysicalResourceId: name });
    await expect(requests.current(name)).resolves.toMatchObject({ requestId: 'r1', requestType: 'Create' });
  });

  it('coerces revisions and capacity that CloudFormation passes as strings', () => {
    const raw = JSON.stringify({
      ...spec,
      capacity: { provisionedCapacity: { workerCount: '1', mcuCount: '2' } },
      workerConfiguration: { workerConfigurationArn: 'arn:worker', revision: '3' },
    });
    expect(parseSpec(raw)).toMatchObject({
      capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 2 } },
      workerConfiguration: { revision: 3 },
    });
  });

  it('updates the configuration of a running connector in place, with its current version, and records the operation', async () => {
    // Arrange: the API reports the connector running with an older slot name.
    const { deps, event, requests, wanted, name } = fixture();
    const api = mockRunningWithOldSlot(deps.connect, wanted);
    api.on(UpdateConnectorCommand).resolves({ connectorOperationArn: 'arn:op1', connectorState: 'UPDATING' });
    await handleOnEvent(event('Update', 'u1'), deps);

    // Act
    const result = await handleIsComplete(event('Update', 'u1'), deps);

    // Assert
    expect(result).toEqual({ IsComplete: false });
    expect(api.commandCalls(UpdateConnectorCommand).map((c) => c.args[0].input)).toEqual([
      { connectorArn: 'arn:c', currentVersion: 'v7', connectorConfiguration: wanted.connectorConfiguration },
    ]);
    expect((await requests.current(name))?.operations).toEqual(['arn:op1']);
  });

  it('waits for its update operation instead of issuing another', async () => {
    const { deps, event, requests, wanted, name } = fixture();
    const api = mockClient(deps.connect);
    api.on(ListConnectorsCommand).resolves(listing(name, 'UPDATING'));
    api.on(DescribeConnectorOperationCommand).resolves({ connectorOperationState: 'UPDATE_IN_PROGRESS' });
    await handleOnEvent(event('Update', 'u1'), deps);
    await requests.recordOperation(name, 'u1', 'arn:op1');

    await expect(handleIsComplete(event('Update', 'u1'), deps)).resolves.toEqual({ IsComplete: false });
    expect(api.commandCalls(UpdateConnectorCommand)).toHaveLength(0);
    expect(wanted.connectorName).toBe(name);
  });

  it.each(['UPDATE_FAILED', 'ROLLBACK_COMPLETE'] as const)(
    'fails the deployment with the reason when its update operation ends %s, without updating again',
    async (state) => {
      // Arrange: MSK Connect rejected the new configuration and (for ROLLBACK_COMPLETE) runs the old one again.
      const { deps, event, requests, wanted, name } = fixture();
      const api = mockRunningWithOldSlot(deps.connect, wanted);
      api.on(DescribeConnectorOperationCommand).resolves({
        connectorOperationArn: 'arn:op1',
        connectorOperationType: 'UPDATE_CONNECTOR_CONFIGURATION',
        connectorOperationState: state,
        errorInfo: { code: 'ConnectorHealthCheckFailed', message: 'replication slot "s" is active for PID 42' },
      });
      await handleOnEvent(event('Update', 'u1'), deps);
      await requests.recordOperation(name, 'u1', 'arn:op1');

      // Act + Assert
      await expect(handleIsComplete(event('Update', 'u1'), deps)).rejects.toThrow(
        new RegExp(`configuration update ended ${state} \\(ConnectorHealthCheckFailed: replication slot "s" is active`),
      );
      expect(api.commandCalls(UpdateConnectorCommand)).toHaveLength(0);
    },
  );

  it('fails instead of looping when a completed update still leaves the configuration different', async () => {
    const { deps, event, requests, wanted, name } = fixture();
    const api = mockRunningWithOldSlot(deps.connect, wanted);
    api.on(DescribeConnectorOperationCommand).resolves({
      connectorOperationType: 'UPDATE_CONNECTOR_CONFIGURATION',
      connectorOperationState: 'UPDATE_COMPLETE',
    });
    await handleOnEvent(event('Update', 'u1'), deps);
    await requests.recordOperation(name, 'u1', 'arn:op1');

    await expect(handleIsComplete(event('Update', 'u1'), deps)).rejects.toThrow(/still differ: slot\.name/);
    expect(api.commandCalls(UpdateConnectorCommand)).toHaveLength(0);
  });

  it('stops a superseded waiter: after a rollback deleted the connector, the old Create does not re-create it', async () => {
    // Arrange: CloudFormation cancelled the Create (another resource failed) and rolled back with a Delete, which
    // removed the connector; the Create's waiter is still polling.
    const { deps, event, name } = fixture();
    const api = mockClient(deps.connect);
    api.on(ListConnectorsCommand).resolves({ connectors: [] });
    await handleOnEvent(event('Create', 'c1'), deps);
    await handleOnEvent(event('Delete', 'd1'), deps);

    // Act + Assert: the old waiter gives up without acting; the rollback's own request completes.
    await expect(handleIsComplete(event('Create', 'c1'), deps)).rejects.toThrow(/superseded by Delete request d1/);
    await expect(handleIsComplete(event('Delete', 'd1'), deps)).resolves.toEqual({ IsComplete: true });
    expect(api.commandCalls(CreateConnectorCommand)).toHaveLength(0);
    expect(api.commandCalls(ListConnectorsCommand)).toHaveLength(1);
    expect(name).toMatch(/^cdc-sync-dev-orders-/);
  });

  it('stops a superseded Update waiter before it updates the connector back to its spec', async () => {
    const { deps, event, wanted } = fixture();
    const api = mockRunningWithOldSlot(deps.connect, wanted);
    await handleOnEvent(event('Update', 'u1'), deps);
    await handleOnEvent(event('Update', 'rollback'), deps);

    await expect(handleIsComplete(event('Update', 'u1'), deps)).rejects.toThrow(/superseded/);
    expect(api.commandCalls(UpdateConnectorCommand)).toHaveLength(0);
  });

  it('leaves a connector another logical resource adopted alone when the old one is deleted', async () => {
    // A renamed construct: the new logical resource's Create adopted the connector, then the old one's Delete comes.
    const { deps, event, requests, name } = fixture();
    const api = mockClient(deps.connect);
    await handleOnEvent(event('Create', 'c1', 'ConnectConnectorordersNew'), deps);
    await handleOnEvent(event('Delete', 'd1', 'ConnectConnectorordersOld'), deps);

    await expect(handleIsComplete(event('Delete', 'd1', 'ConnectConnectorordersOld'), deps)).resolves.toEqual({
      IsComplete: true,
    });
    expect(api.commandCalls(DeleteConnectorCommand)).toHaveLength(0);
    await expect(requests.current(name)).resolves.toMatchObject({ requestId: 'c1' });
  });

  it('reports the connector ARN once it runs as wanted', async () => {
    const { deps, event, wanted, name } = fixture();
    const api = mockClient(deps.connect);
    api.on(ListConnectorsCommand).resolves(listing(name));
    api.on(DescribeConnectorCommand).resolves(described(wanted));
    await handleOnEvent(event('Create', 'c1'), deps);

    await expect(handleIsComplete(event('Create', 'c1'), deps)).resolves.toEqual({
      IsComplete: true,
      Data: { ConnectorArn: 'arn:c' },
    });
  });

  it('rides out MSK Connect throttling with the SDK standard retry mode (throttled, then answered: no failure)', async () => {
    // Arrange: a real client from the handler's factory, over an HTTP handler that throttles the first request.
    const seen: string[] = [];
    let throttled = false;
    const requestHandler = {
      handle: async (request: { method: string; path: string }) => {
        seen.push(`${request.method} ${decodeURIComponent(request.path)}`);
        const reply = (statusCode: number, body: unknown, headers: Record<string, string> = {}) => ({
          response: {
            statusCode,
            headers: { 'content-type': 'application/json', ...headers },
            body: Readable.from([Buffer.from(JSON.stringify(body))]),
          },
        });
        if (!throttled) {
          throttled = true;
          return reply(429, { message: 'Rate exceeded' }, { 'x-amzn-errortype': 'TooManyRequestsException' });
        }
        if (request.path === '/v1/connectors') return reply(200, listing(current));
        return reply(200, described(wantedSpec));
      },
    };
    const connect = kafkaConnectClient({
      region: 'eu-west-1',
      credentials: LOCAL_CREDENTIALS,
      requestHandler: requestHandler as unknown as KafkaConnectClientConfig['requestHandler'],
    });
    const { deps, event, wanted, name } = fixture(connect);
    const current = name;
    const wantedSpec = wanted;
    await handleOnEvent(event('Create', 'c1'), deps);

    // Act
    const result = await handleIsComplete(event('Create', 'c1'), deps);

    // Assert
    expect(result).toEqual({ IsComplete: true, Data: { ConnectorArn: 'arn:c' } });
    expect(seen).toEqual(['GET /v1/connectors', 'GET /v1/connectors', 'GET /v1/connectors/arn:c']);
    connect.destroy();
  });
});

describe('MSK IAM token of the topics handler', () => {
  // The real signer, with credentials from the environment (the first link of the default chain, as the Lambda
  // runtime sets them) and the clock frozen, so that its output is reproducible.
  beforeEach(() => {
    vi.stubEnv('AWS_PROFILE', undefined); // a profile would make the chain skip the environment variables
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLE');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY');
    vi.stubEnv('AWS_SESSION_TOKEN', 'session-token');
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2024-01-02T03:04:05Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
  });

  it("gives kafkajs aws-msk-iam-sasl-signer-js's token: a presigned kafka-cluster:Connect URL for the region", async () => {
    // Act
    const { value } = await mskIamTokenProvider('eu-west-1')();

    // Assert: exactly what the signer makes, and it is the URL MSK expects.
    expect(value).toBe((await generateAuthToken({ region: 'eu-west-1' })).token);
    const url = new URL(Buffer.from(value, 'base64url').toString('utf8'));
    expect(url.host).toBe('kafka.eu-west-1.amazonaws.com');
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      Action: 'kafka-cluster:Connect',
      'X-Amz-Credential': 'AKIDEXAMPLE/20240102/eu-west-1/kafka-cluster/aws4_request',
      'X-Amz-Date': '20240102T030405Z',
      'X-Amz-Expires': '900',
      'X-Amz-Security-Token': 'session-token',
      'X-Amz-Signature': expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });

  it('signs a new token on each call, so a re-authentication never presents an expired one', async () => {
    // Arrange
    const provide = mskIamTokenProvider('eu-west-1');
    const first = await provide();

    // Act: the next authentication, 20 minutes later (past the 15-minute expiry).
    vi.setSystemTime(new Date('2024-01-02T03:24:05Z'));
    const second = await provide();

    // Assert
    expect(new URL(Buffer.from(second.value, 'base64url').toString('utf8')).searchParams.get('X-Amz-Date')).toBe(
      '20240102T032405Z',
    );
    expect(second.value).not.toBe(first.value);
  });
});

describe('MSK Serverless topic plan', () => {
  it('creates missing topics, grows partitions and refuses to shrink', () => {
    const plan = planTopics(
      [
        { name: 'a', partitions: 3 },
        { name: 'b', partitions: 6 },
        { name: 'c', partitions: 1 },
      ],
      new Map([
        ['b', 3],
        ['c', 2],
      ]),
    );
    expect(plan).toEqual({
      create: [{ name: 'a', partitions: 3 }],
      grow: [{ name: 'b', partitions: 6 }],
      problems: ['topic c has 2 partitions; Kafka cannot shrink it to 1'],
    });
  });
});

describe('Debezium configuration helpers', () => {
  it('gives the config provider the secret name, since Kafka config references split on colons', () => {
    expect(
      secretNameFromArn('arn:aws:secretsmanager:eu-west-1:111111111111:secret:cdc-sync/dev/orders-db-AbCdEf'),
    ).toBe('cdc-sync/dev/orders-db');
    expect(() => secretNameFromArn('arn:aws:secretsmanager:eu-west-1:111111111111:secret:orders')).toThrow(
      /not a complete Secrets Manager secret ARN/,
    );
  });

  it('escapes table names for the anchored-regex include lists, and adds the signal and heartbeat tables', () => {
    const [orders] = environmentConfig('dev').sources;
    if (orders === undefined) throw new Error('dev has sources');
    expect(tableIncludeList({ ...orders, captureSchemas: undefined })).toBe(
      'public\\.orders,public\\.order_lines,public\\.debezium_signal,public\\.cdc_heartbeat',
    );
    expect(tableIncludeList({ ...orders, captureSchemas: undefined, heartbeatTable: false })).toBe(
      'public\\.orders,public\\.order_lines,public\\.debezium_signal',
    );
  });

  it('captures a whole schema with one pattern, and keeps listed tables of other schemas literal', () => {
    const [orders] = environmentConfig('dev').sources;
    if (orders === undefined) throw new Error('dev has sources');
    const tables = [...orders.tables, { name: 'sales.refunds', partitions: 1 }];
    expect(tableIncludeList({ ...orders, tables, captureSchemas: ['public'] })).toBe('public\\..*,sales\\.refunds');
  });
});
