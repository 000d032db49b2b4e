import { AwsApiError, type AwsRestCall, awsRestClient } from '../shared/aws-rest';
import { type ConnectorSpec, type ConnectorState, decide, type ObservedConnector, specDescription } from './reconcile';

/**
 * Custom resource `Custom::MskConnectConnector` (CDK Provider framework: onEvent + isComplete).
 *
 * Why not AWS::KafkaConnect::Connector: every property of that resource except Capacity requires replacement, and
 * the connector name is fixed, so a configuration change fails ("already exists") or, with a changing name, runs two
 * Debezium connectors on one replication slot and starts the new one from scratch (new offsets, full re-snapshot).
 * MSK Connect's UpdateConnector API changes the configuration and the capacity in place; this resource uses it, and
 * re-creates the connector (same name, offsets kept in the custom offset topic) only for immutable changes.
 *
 * onEvent only names the physical resource; isComplete reconciles one step per poll (see ./reconcile.ts).
 */

interface ProviderEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: { readonly Spec?: string };
}

type Call = AwsRestCall;

let client: Call | undefined;
const api = (): Call => {
  client ??= awsRestClient({ service: 'kafkaconnect', region: process.env.AWS_REGION ?? 'us-east-1' });
  return client;
};

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

export async function onEvent(event: ProviderEvent): Promise<{ PhysicalResourceId: string }> {
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId ?? '' };
  // The connector name is the physical id: a new name makes CloudFormation delete the old connector afterwards.
  return { PhysicalResourceId: parseSpec(event.ResourceProperties.Spec).connectorName };
}

interface ConnectorSummary {
  connectorArn: string;
  connectorName: string;
  connectorState: ConnectorState;
  currentVersion: string;
}

export async function observe(call: Call, name: string): Promise<ObservedConnector> {
  const matches: ConnectorSummary[] = [];
  let nextToken: string | undefined;
  do {
    const page = (await call('GET', '/v1/connectors', {
      query: { connectorNamePrefix: name, maxResults: '100', nextToken },
    })) as { connectors?: ConnectorSummary[]; nextToken?: string };
    matches.push(...(page.connectors ?? []).filter((c) => c.connectorName === name));
    nextToken = page.nextToken;
  } while (nextToken !== undefined);
  // While a re-create is in progress the old connector may still be listed as DELETING next to nothing else.
  const current = matches.find((c) => c.connectorState !== 'DELETING') ?? matches[0];
  if (current === undefined) return { state: 'ABSENT' };
  if (current.connectorState === 'DELETING') {
    return { state: 'DELETING', arn: current.connectorArn, currentVersion: current.currentVersion };
  }
  try {
    const described = (await call('GET', `/v1/connectors/${encodeURIComponent(current.connectorArn)}`)) as {
      connectorState: ConnectorState;
      currentVersion: string;
      connectorDescription?: string;
      connectorConfiguration?: Record<string, string>;
      capacity?: unknown;
      stateDescription?: { code?: string; message?: string };
    };
    return {
      state: described.connectorState,
      arn: current.connectorArn,
      currentVersion: described.currentVersion,
      description: described.connectorDescription,
      configuration: described.connectorConfiguration,
      capacity: described.capacity,
      stateMessage: [described.stateDescription?.code, described.stateDescription?.message].filter(Boolean).join(': '),
    };
  } catch (error) {
    if (error instanceof AwsApiError && error.status === 404) return { state: 'ABSENT' };
    throw error;
  }
}

export async function isComplete(
  event: ProviderEvent,
  call: Call = api(),
): Promise<{ IsComplete: boolean; Data?: Record<string, string> }> {
  const name = event.PhysicalResourceId ?? '';
  const desired = event.RequestType === 'Delete' ? undefined : parseSpec(event.ResourceProperties.Spec);
  const observed = await observe(call, name);
  const action = decide(event.RequestType, desired, observed);
  console.log(JSON.stringify({ connector: name, requestType: event.RequestType, state: observed.state, action }));

  const path = observed.state === 'ABSENT' ? '' : `/v1/connectors/${encodeURIComponent(observed.arn)}`;
  const version = observed.state === 'ABSENT' ? undefined : observed.currentVersion;
  switch (action.kind) {
    case 'create': {
      const spec = desired as ConnectorSpec;
      await call('POST', '/v1/connectors', { body: { ...spec, connectorDescription: specDescription(spec) } });
      return { IsComplete: false };
    }
    case 'delete':
      await call('DELETE', path, { query: { currentVersion: version } });
      return { IsComplete: false };
    case 'update-configuration':
      await call('PUT', path, {
        query: { currentVersion: version },
        body: { connectorConfiguration: (desired as ConnectorSpec).connectorConfiguration },
      });
      return { IsComplete: false };
    case 'update-capacity':
      await call('PUT', path, {
        query: { currentVersion: version },
        body: { capacity: (desired as ConnectorSpec).capacity },
      });
      return { IsComplete: false };
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
