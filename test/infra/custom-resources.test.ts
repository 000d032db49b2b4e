import { describe, expect, it } from 'vitest';
import { environmentConfig } from '../../lib/config';
import { secretNameFromArn, tableIncludeList } from '../../lib/constructs/debezium-config';
import { isComplete, onEvent, parseSpec } from '../../lib/custom-resources/connector';
import {
  type ConnectorSpec,
  decide,
  type ObservedConnector,
  specDescription,
} from '../../lib/custom-resources/connector/reconcile';
import type { AwsRestCall } from '../../lib/custom-resources/shared/aws-rest';
import { presignUrl, signRequest } from '../../lib/custom-resources/shared/sigv4';
import { planTopics } from '../../lib/custom-resources/topics';

const EXAMPLE_CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

describe('SigV4 signing', () => {
  it("matches AWS's published example signature (IAM ListUsers, 2015-08-30)", () => {
    // Arrange: the example from "Create a signed AWS API request" in the IAM user guide.
    const request = {
      method: 'GET',
      url: new URL('https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08'),
      headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' },
    };

    // Act
    const headers = signRequest(request, {
      service: 'iam',
      region: 'us-east-1',
      credentials: EXAMPLE_CREDENTIALS,
      date: new Date('2015-08-30T12:36:00Z'),
    });

    // Assert
    expect(headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7',
    );
  });

  it('presigns a URL with the query-string authentication parameters and the session token', () => {
    const url = presignUrl(new URL('https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect'), {
      service: 'kafka-cluster',
      region: 'eu-west-1',
      credentials: { ...EXAMPLE_CREDENTIALS, sessionToken: 'token' },
      expiresSeconds: 900,
      date: new Date('2024-01-02T03:04:05Z'),
    });
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      Action: 'kafka-cluster:Connect',
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Credential': 'AKIDEXAMPLE/20240102/eu-west-1/kafka-cluster/aws4_request',
      'X-Amz-Date': '20240102T030405Z',
      'X-Amz-Expires': '900',
      'X-Amz-SignedHeaders': 'host',
      'X-Amz-Security-Token': 'token',
      'X-Amz-Signature': expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });
});

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

  it('treats connector.class as immutable (UpdateConnector cannot change it)', () => {
    const other = { ...spec, connectorConfiguration: { ...spec.connectorConfiguration, 'connector.class': 'x' } };
    expect(specDescription(other)).not.toBe(specDescription(spec));
    const capacityOnly = { ...spec, capacity: { provisionedCapacity: { workerCount: 1, mcuCount: 4 } } };
    expect(specDescription(capacityOnly)).toBe(specDescription(spec));
  });
});

describe('connector custom resource handler', () => {
  const event = (requestType: 'Create' | 'Update' | 'Delete') => ({
    RequestType: requestType,
    PhysicalResourceId: spec.connectorName,
    ResourceProperties: { Spec: JSON.stringify(spec) },
  });

  it('names the physical resource after the connector', async () => {
    await expect(
      onEvent({ RequestType: 'Create', ResourceProperties: { Spec: JSON.stringify(spec) } }),
    ).resolves.toEqual({ PhysicalResourceId: 'cdc-sync-dev-orders' });
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

  it('updates the configuration of a running connector with its current version', async () => {
    // Arrange: the API reports the connector running with an older slot name.
    const calls: Array<[string, string, unknown]> = [];
    const call: AwsRestCall = async (method, path, options) => {
      calls.push([method, path, options]);
      if (method === 'GET' && path === '/v1/connectors') {
        return {
          connectors: [
            {
              connectorArn: 'arn:c',
              connectorName: spec.connectorName,
              connectorState: 'RUNNING',
              currentVersion: 'v7',
            },
          ],
        };
      }
      if (method === 'GET') {
        return {
          connectorState: 'RUNNING',
          currentVersion: 'v7',
          connectorDescription: specDescription(spec),
          connectorConfiguration: { ...spec.connectorConfiguration, 'slot.name': 'old' },
          capacity: spec.capacity,
        };
      }
      return {};
    };

    // Act
    const result = await isComplete(event('Update'), call);

    // Assert
    expect(result).toEqual({ IsComplete: false });
    expect(calls.at(-1)).toEqual([
      'PUT',
      '/v1/connectors/arn%3Ac',
      { query: { currentVersion: 'v7' }, body: { connectorConfiguration: spec.connectorConfiguration } },
    ]);
  });

  it('reports the connector ARN once it runs as wanted', async () => {
    const call: AwsRestCall = async (method, path) =>
      path === '/v1/connectors'
        ? {
            connectors: [
              {
                connectorArn: 'arn:c',
                connectorName: spec.connectorName,
                connectorState: 'RUNNING',
                currentVersion: 'v1',
              },
            ],
          }
        : method === 'GET'
          ? {
              connectorState: 'RUNNING',
              currentVersion: 'v1',
              connectorDescription: specDescription(spec),
              connectorConfiguration: spec.connectorConfiguration,
              capacity: spec.capacity,
            }
          : {};
    await expect(isComplete(event('Create'), call)).resolves.toEqual({
      IsComplete: true,
      Data: { ConnectorArn: 'arn:c' },
    });
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

  it('escapes table names for the anchored-regex include lists, and adds the signal table', () => {
    const [orders] = environmentConfig('dev').sources;
    if (orders === undefined) throw new Error('dev has sources');
    expect(tableIncludeList({ ...orders, captureSchemas: undefined })).toBe(
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
