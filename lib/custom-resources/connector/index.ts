import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  ConflictException,
  type ConnectorOperationState,
  CreateConnectorCommand,
  DeleteConnectorCommand,
  DescribeConnectorCommand,
  DescribeConnectorOperationCommand,
  type DescribeConnectorOperationResponse,
  KafkaConnectClient,
  type KafkaConnectClientConfig,
  ListConnectorsCommand,
  NotFoundException,
  UpdateConnectorCommand,
} from '@aws-sdk/client-kafkaconnect';
import {
  type ConnectorSpec,
  type ConnectorState,
  decide,
  type ObservedConnector,
  type RequestHistory,
  specDescription,
} from './reconcile';
import { ConnectorRequests } from './requests';

/**
 * Custom resource `Custom::MskConnectConnector` (CDK Provider framework: onEvent + isComplete).
 *
 * Why not AWS::KafkaConnect::Connector: in its CloudFormation resource schema every property except Capacity (and
 * Tags) is create-only, ConnectorConfiguration included, even after MSK Connect's UpdateConnector learned to change
 * the configuration in place (January 2025); CloudFormation would delete and re-create the connector for every
 * configuration change. This resource applies configuration and capacity changes with UpdateConnector (in place,
 * offsets kept) and re-creates the connector (same name, offsets kept in its own offsets topic) only for immutable
 * changes. docs/deploy.md, "What CloudFormation cannot do", has the details.
 *
 * onEvent claims the connector for the request (see ./requests.ts) and names the physical resource; isComplete
 * reconciles one step per poll (see ./reconcile.ts), and stops without acting once a newer request has claimed the
 * connector.
 */

export interface ProviderEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly RequestId: string;
  readonly StackId: string;
  readonly LogicalResourceId: string;
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: { readonly Spec?: string };
}

export interface Dependencies {
  readonly connect: KafkaConnectClient;
  readonly requests: ConnectorRequests;
  readonly now: () => number;
}

/**
 * AWS SDK clients retry throttling and transient faults with the SDK's standard retry mode (exponential backoff with
 * jitter, a retry quota); five attempts fit several times into the handlers' one-minute timeout.
 */
export const RETRY = { retryMode: 'standard', maxAttempts: 5 } as const;

export function kafkaConnectClient(overrides: Partial<KafkaConnectClientConfig> = {}): KafkaConnectClient {
  return new KafkaConnectClient({ ...RETRY, ...overrides });
}

let defaults: Dependencies | undefined;
function defaultDependencies(): Dependencies {
  const tableName = process.env.CONNECTOR_REQUESTS_TABLE;
  if (tableName === undefined) throw new Error('CONNECTOR_REQUESTS_TABLE is not set');
  defaults ??= {
    connect: kafkaConnectClient(),
    requests: new ConnectorRequests(new DynamoDBClient(RETRY), tableName),
    now: Date.now,
  };
  return defaults;
}

// The Lambda entry points take the event only: Lambda passes its context as the second argument.
export const onEvent = (event: ProviderEvent) => handleOnEvent(event, defaultDependencies());
export const isComplete = (event: ProviderEvent) => handleIsComplete(event, defaultDependencies());

/** The spec arrives as a JSON string; CloudFormation renders numeric tokens as numbers or strings, so coerce. */
export function parseSpec(raw: string | undefined): ConnectorSpec {
  if (raw === undefined) throw new Error('Spec property is missing');
  const spec = JSON.parse(raw) as ConnectorSpec;
  const capacity =
    'provisionedCapacity' in spec.capacity
      ? {
          provisionedCapacity: {
            workerCount: Number(spec.capacity.provisionedCapacity.workerCount),
            mcuCount: Number(spec.capacity.provisionedCapacity.mcuCount),
          },
        }
      : spec.capacity;
  return {
    ...spec,
    capacity,
    plugins: spec.plugins.map((p) => ({
      customPlugin: { ...p.customPlugin, revision: Number(p.customPlugin.revision) },
    })),
    workerConfiguration: {
      ...spec.workerConfiguration,
      revision: Number(spec.workerConfiguration.revision),
    },
  };
}

const ownerOf = (event: ProviderEvent) => `${event.StackId}|${event.LogicalResourceId}`;

export async function handleOnEvent(
  event: ProviderEvent,
  deps: Dependencies,
): Promise<{ PhysicalResourceId?: string }> {
  // Delete events carry the properties too: the connector is named by the spec, whatever the physical id says (a
  // Create that CloudFormation cancelled never reported one).
  const name = parseSpec(event.ResourceProperties.Spec).connectorName;
  const claim = await deps.requests.claim({
    connector: name,
    requestId: event.RequestId,
    requestType: event.RequestType,
    owner: ownerOf(event),
    claimedAt: deps.now(),
  });
  log({ connector: name, requestType: event.RequestType, requestId: event.RequestId, claim });
  // A Delete keeps the physical id CloudFormation sent (the framework refuses any other, even a missing one).
  if (event.RequestType === 'Delete') {
    return event.PhysicalResourceId === undefined ? {} : { PhysicalResourceId: event.PhysicalResourceId };
  }
  // The connector name is the physical id: a new name makes CloudFormation delete the old connector afterwards.
  return { PhysicalResourceId: name };
}

export async function observe(connect: KafkaConnectClient, name: string): Promise<ObservedConnector> {
  const matches: { arn: string; state: ConnectorState; currentVersion: string }[] = [];
  let nextToken: string | undefined;
  do {
    const page = await connect.send(
      new ListConnectorsCommand({ connectorNamePrefix: name, maxResults: 100, nextToken }),
    );
    for (const c of page.connectors ?? []) {
      if (c.connectorName !== name || c.connectorArn === undefined) continue;
      matches.push({
        arn: c.connectorArn,
        state: c.connectorState as ConnectorState,
        currentVersion: c.currentVersion ?? '',
      });
    }
    nextToken = page.nextToken;
  } while (nextToken !== undefined);
  // While a re-create is in progress the old connector may still be listed as DELETING next to nothing else.
  const current = matches.find((c) => c.state !== 'DELETING') ?? matches[0];
  if (current === undefined) return { state: 'ABSENT' };
  if (current.state === 'DELETING')
    return { state: 'DELETING', arn: current.arn, currentVersion: current.currentVersion };
  try {
    const described = await connect.send(new DescribeConnectorCommand({ connectorArn: current.arn }));
    return {
      state: described.connectorState as ConnectorState,
      arn: current.arn,
      currentVersion: described.currentVersion ?? current.currentVersion,
      description: described.connectorDescription,
      configuration: described.connectorConfiguration,
      capacity: described.capacity,
      stateMessage: [described.stateDescription?.code, described.stateDescription?.message].filter(Boolean).join(': '),
    };
  } catch (error) {
    if (error instanceof NotFoundException) return { state: 'ABSENT' };
    throw error;
  }
}

const OPERATION_RUNNING: ReadonlySet<ConnectorOperationState> = new Set([
  'PENDING',
  'UPDATE_IN_PROGRESS',
  'ROLLBACK_IN_PROGRESS',
]);
const OPERATION_FAILED: ReadonlySet<ConnectorOperationState> = new Set([
  'UPDATE_FAILED',
  'ROLLBACK_COMPLETE',
  'ROLLBACK_FAILED',
]);

/** Why an UpdateConnector operation failed, for the deployment's error message. */
function operationFailure(name: string, operation: DescribeConnectorOperationResponse): string {
  const what = operation.connectorOperationType === 'UPDATE_WORKER_SETTING' ? 'capacity' : 'configuration';
  const cause = [operation.errorInfo?.code, operation.errorInfo?.message].filter(Boolean).join(': ');
  const rolledBack =
    operation.connectorOperationState === 'ROLLBACK_COMPLETE'
      ? `; MSK Connect rolled the connector back to its previous ${what}`
      : '';
  return `connector ${name}: the ${what} update ended ${operation.connectorOperationState} (${cause || 'no reason given'})${rolledBack}. Operation ${operation.connectorOperationArn}; fix the cause and deploy again.`;
}

export async function handleIsComplete(
  event: ProviderEvent,
  deps: Dependencies,
): Promise<{ IsComplete: boolean; Data?: Record<string, string> }> {
  const { connect, requests } = deps;
  const desired = parseSpec(event.ResourceProperties.Spec);
  const name = desired.connectorName;

  const current = await requests.current(name);
  if (event.RequestType === 'Delete' && current !== undefined && current.owner !== ownerOf(event)) {
    // Another logical resource adopted the connector (its Create ran first): this Delete is not ours to carry out.
    log({ connector: name, requestType: event.RequestType, action: 'skip', owner: current.owner });
    return { IsComplete: true };
  }
  if (current?.requestId !== event.RequestId) {
    throw new Error(
      `connector ${name}: this ${event.RequestType} request (${event.RequestId}) was superseded by ${current?.requestType ?? 'no'} request ${current?.requestId ?? '(none recorded)'}; it stops without acting`,
    );
  }

  // This request's own UpdateConnector operations: wait for them, fail on a failed one, never issue one twice.
  const operations = await Promise.all(
    current.operations.map((arn) =>
      connect.send(new DescribeConnectorOperationCommand({ connectorOperationArn: arn })),
    ),
  );
  for (const operation of operations) {
    const state = operation.connectorOperationState;
    if (state !== undefined && OPERATION_RUNNING.has(state)) {
      log({ connector: name, requestType: event.RequestType, action: 'wait', operation: state });
      return { IsComplete: false };
    }
    if (state !== undefined && OPERATION_FAILED.has(state)) throw new Error(operationFailure(name, operation));
  }
  const completed = (type: string) =>
    operations.some((o) => o.connectorOperationType === type && o.connectorOperationState === 'UPDATE_COMPLETE');
  const history: RequestHistory = {
    configurationUpdated: completed('UPDATE_CONNECTOR_CONFIGURATION'),
    capacityUpdated: completed('UPDATE_WORKER_SETTING'),
  };

  const observed = await observe(connect, name);
  const action = decide(event.RequestType, event.RequestType === 'Delete' ? undefined : desired, observed, history);
  log({ connector: name, requestType: event.RequestType, state: observed.state, action });

  const target =
    observed.state === 'ABSENT' ? undefined : { connectorArn: observed.arn, currentVersion: observed.currentVersion };
  const record = async (operationArn: string | undefined) => {
    if (operationArn === undefined) return;
    if (!(await requests.recordOperation(name, event.RequestId, operationArn))) {
      throw new Error(`connector ${name}: superseded while starting operation ${operationArn}; it stops here`);
    }
  };
  switch (action.kind) {
    case 'create':
      try {
        await connect.send(
          new CreateConnectorCommand({ ...clone(desired), connectorDescription: specDescription(desired) }),
        );
      } catch (error) {
        // The previous connector of this name is still being deleted, or another attempt created it: look again.
        if (!(error instanceof ConflictException)) throw error;
      }
      return { IsComplete: false };
    case 'delete':
      await connect.send(
        new DeleteConnectorCommand({ connectorArn: target?.connectorArn, currentVersion: target?.currentVersion }),
      );
      return { IsComplete: false };
    case 'update-configuration': {
      const updated = await connect.send(
        new UpdateConnectorCommand({
          connectorArn: target?.connectorArn,
          currentVersion: target?.currentVersion,
          connectorConfiguration: { ...desired.connectorConfiguration },
        }),
      );
      await record(updated.connectorOperationArn);
      return { IsComplete: false };
    }
    case 'update-capacity': {
      const updated = await connect.send(
        new UpdateConnectorCommand({
          connectorArn: target?.connectorArn,
          currentVersion: target?.currentVersion,
          capacity: clone(desired.capacity),
        }),
      );
      await record(updated.connectorOperationArn);
      return { IsComplete: false };
    }
    case 'wait':
      return { IsComplete: false };
    case 'done':
      return observed.state === 'ABSENT' || event.RequestType === 'Delete'
        ? { IsComplete: true }
        : { IsComplete: true, Data: { ConnectorArn: observed.arn } };
    case 'fail':
      throw new Error(action.reason);
  }
}

/** A mutable deep copy: the SDK's input types are not readonly. */
function clone<T>(value: T): Mutable<T> {
  return structuredClone(value) as Mutable<T>;
}
type Mutable<T> = T extends readonly (infer U)[]
  ? Mutable<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Mutable<T[K]> }
    : T;

function log(entry: Record<string, unknown>): void {
  console.log(JSON.stringify(entry));
}
