import { createHash } from 'node:crypto';

/**
 * The desired MSK Connect connector, exactly as the CreateConnector API takes it (REST-JSON field names), minus the
 * description, which the reconciler owns (it stores the hash of the immutable part there).
 */
export interface ConnectorSpec {
  readonly connectorName: string;
  readonly connectorConfiguration: Readonly<Record<string, string>>;
  readonly capacity: ConnectorCapacitySpec;
  readonly kafkaConnectVersion: string;
  readonly kafkaCluster: {
    readonly apacheKafkaCluster: {
      readonly bootstrapServers: string;
      readonly vpc: { readonly securityGroups: readonly string[]; readonly subnets: readonly string[] };
    };
  };
  readonly kafkaClusterClientAuthentication: { readonly authenticationType: 'IAM' | 'NONE' };
  readonly kafkaClusterEncryptionInTransit: { readonly encryptionType: 'TLS' | 'PLAINTEXT' };
  readonly logDelivery: {
    readonly workerLogDelivery: { readonly cloudWatchLogs: { readonly enabled: boolean; readonly logGroup: string } };
  };
  readonly plugins: readonly {
    readonly customPlugin: { readonly customPluginArn: string; readonly revision: number };
  }[];
  readonly serviceExecutionRoleArn: string;
  readonly workerConfiguration: { readonly workerConfigurationArn: string; readonly revision: number };
}

export type ConnectorCapacitySpec =
  | { readonly provisionedCapacity: { readonly workerCount: number; readonly mcuCount: number } }
  | {
      readonly autoScaling: {
        readonly minWorkerCount: number;
        readonly maxWorkerCount: number;
        readonly mcuCount: number;
        readonly scaleInPolicy: { readonly cpuUtilizationPercentage: number };
        readonly scaleOutPolicy: { readonly cpuUtilizationPercentage: number };
      };
    };

export type ConnectorState =
  | 'CREATING'
  | 'RUNNING'
  | 'UPDATING'
  | 'DELETING'
  | 'FAILED'
  | 'PAUSED'
  | 'PAUSING'
  | 'RESUMING'
  | 'RESTARTING';

/** States that end on their own: the reconciler waits them out. */
const TRANSITIONS: ReadonlySet<ConnectorState> = new Set([
  'CREATING',
  'UPDATING',
  'DELETING',
  'PAUSING',
  'RESUMING',
  'RESTARTING',
]);

/** What the MSK Connect API says about the connector with our name. */
export type ObservedConnector =
  | { readonly state: 'ABSENT' }
  | {
      readonly state: ConnectorState;
      readonly arn: string;
      readonly currentVersion: string;
      readonly description?: string;
      readonly configuration?: Readonly<Record<string, string>>;
      readonly capacity?: unknown;
      readonly stateMessage?: string;
    };

/**
 * What this request's own UpdateConnector operations achieved so far (read from DescribeConnectorOperation by the
 * handler). An update that completed and still left a difference is not issued again: the reconciler fails instead
 * of looping until the provider times out.
 */
export interface RequestHistory {
  readonly configurationUpdated: boolean;
  readonly capacityUpdated: boolean;
}

export const NO_HISTORY: RequestHistory = { configurationUpdated: false, capacityUpdated: false };

export type ReconcileAction =
  | { readonly kind: 'create' }
  | { readonly kind: 'delete'; readonly why: string }
  | { readonly kind: 'update-configuration' }
  | { readonly kind: 'update-capacity' }
  | { readonly kind: 'wait' }
  | { readonly kind: 'done' }
  | { readonly kind: 'fail'; readonly reason: string };

const DESCRIPTION_PREFIX = 'cdc-sync spec ';

function stable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stable);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, stable(v)]),
    );
  }
  return value;
}

/**
 * The connector description we create it with: a hash of everything UpdateConnector cannot change (all but the
 * configuration and the capacity, plus `connector.class`, which UpdateConnector refuses to override). A different
 * hash means the connector has to be re-created.
 */
export function specDescription(spec: ConnectorSpec): string {
  const { connectorConfiguration, capacity: _capacity, ...immutable } = spec;
  const hash = createHash('sha256')
    .update(JSON.stringify(stable({ ...immutable, connectorClass: connectorConfiguration['connector.class'] })))
    .digest('hex')
    .slice(0, 32);
  return `${DESCRIPTION_PREFIX}${hash}`;
}

/** Keys whose values differ (present on one side only included), sorted. */
export function configurationDifferences(
  desired: Readonly<Record<string, string>>,
  actual: Readonly<Record<string, string>>,
): string[] {
  const keys = new Set([...Object.keys(desired), ...Object.keys(actual)]);
  return [...keys].filter((key) => desired[key] !== actual[key]).sort();
}

/** Capacity as comparable numbers; the API answers with extra read-only fields we ignore. */
function capacityKey(capacity: unknown): string {
  const c = (capacity ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const provisioned = c.provisionedCapacity;
  if (provisioned !== undefined) {
    return `provisioned:${Number(provisioned.workerCount)}:${Number(provisioned.mcuCount)}`;
  }
  const auto = c.autoScaling as Record<string, unknown> | undefined;
  if (auto !== undefined) {
    const pct = (p: unknown) => Number((p as Record<string, unknown> | undefined)?.cpuUtilizationPercentage);
    return `auto:${Number(auto.minWorkerCount)}:${Number(auto.maxWorkerCount)}:${Number(auto.mcuCount)}:${pct(auto.scaleInPolicy)}:${pct(auto.scaleOutPolicy)}`;
  }
  return 'unknown';
}

/**
 * One step of the reconcile loop run by the provider's isComplete handler: from what exists to what is wanted, the
 * next API call (or wait / done / fail). Stateless apart from `history`, so every poll re-derives the step from the
 * API's answer:
 *
 * - Delete: delete the connector, wait until it is gone.
 * - Create/Update, nothing there: create it.
 * - A transition in progress (CREATING, UPDATING, DELETING, …): wait.
 * - RUNNING with a different immutable hash: delete, then (next polls) create it again under the same name. The
 *   connector's own offsets topic keeps the source offsets, so Debezium resumes, no re-snapshot.
 * - RUNNING with another configuration: UpdateConnector (in place, offsets kept), then capacity the same way
 *   (the API takes one of the two per call). Each at most once per request (see {@link RequestHistory}).
 * - FAILED: re-create when the wanted spec differs from the one that failed, otherwise report the failure.
 * - PAUSED: report it; someone paused it on purpose, and an update would need to skip MSK Connect's health checks.
 */
export function decide(
  requestType: 'Create' | 'Update' | 'Delete',
  desired: ConnectorSpec | undefined,
  observed: ObservedConnector,
  history: RequestHistory = NO_HISTORY,
): ReconcileAction {
  if (requestType === 'Delete' || desired === undefined) {
    if (observed.state === 'ABSENT') return { kind: 'done' };
    if (observed.state === 'DELETING') return { kind: 'wait' };
    return { kind: 'delete', why: 'the resource is being deleted' };
  }
  if (observed.state === 'ABSENT') return { kind: 'create' };
  if (TRANSITIONS.has(observed.state)) return { kind: 'wait' };
  const hashMatches = observed.description === specDescription(desired);
  const differences = configurationDifferences(desired.connectorConfiguration, observed.configuration ?? {});
  const capacityMatches = capacityKey(desired.capacity) === capacityKey(observed.capacity);

  if (observed.state === 'FAILED') {
    if (hashMatches && differences.length === 0 && capacityMatches) {
      return {
        kind: 'fail',
        reason: `connector ${desired.connectorName} is FAILED: ${observed.stateMessage || 'no reason given'}`,
      };
    }
    return { kind: 'delete', why: 'it FAILED and the wanted spec differs from the failed one' };
  }
  if (observed.state === 'PAUSED') {
    return {
      kind: 'fail',
      reason: `connector ${desired.connectorName} is PAUSED: resume it (aws kafkaconnect resume-connector) and deploy again`,
    };
  }
  if (!hashMatches) return { kind: 'delete', why: 'a property UpdateConnector cannot change has changed' };
  if (differences.length > 0) {
    if (history.configurationUpdated) {
      return {
        kind: 'fail',
        reason: `connector ${desired.connectorName}: its configuration update completed, yet these keys still differ: ${differences.join(', ')}`,
      };
    }
    return { kind: 'update-configuration' };
  }
  if (!capacityMatches) {
    if (history.capacityUpdated) {
      return {
        kind: 'fail',
        reason: `connector ${desired.connectorName}: its capacity update completed, yet the capacity still differs`,
      };
    }
    return { kind: 'update-capacity' };
  }
  return { kind: 'done' };
}
