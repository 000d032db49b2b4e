import { type Environment, Tags } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { assertValidConfig, type EnvironmentConfig } from './config';
import { DataStack } from './stacks/data-stack';
import { LanesStack } from './stacks/lanes-stack';
import { NetworkStack } from './stacks/network-stack';
import { ObservabilityStack } from './stacks/observability-stack';
import { StreamingStack } from './stacks/streaming-stack';
import { resourcePrefix } from './util';

export interface CdcSyncStageProps {
  readonly config: EnvironmentConfig;
}

/**
 * One environment of the platform (the "stage"): five stacks deployed in dependency order by
 * `cdk deploy -c env=<name> --all`: network → data → streaming → lanes → observability. The configuration is
 * validated first, so a known-bad combination fails the synth with every problem listed, before anything is built.
 *
 * A plain construct, not a `cdk.Stage`: the CLI's `--all` only selects stacks of the main cloud assembly and fails
 * on an app whose stacks all live in a Stage's nested assembly ("No stack found in the main cloud assembly",
 * aws/aws-cdk-cli#1003). Grouping the stacks under a construct keeps the `dev/Network` paths and one environment
 * per app, and `--all` works.
 */
export class CdcSyncStage extends Construct {
  readonly config: EnvironmentConfig;
  readonly network: NetworkStack;
  readonly data: DataStack;
  readonly streaming: StreamingStack;
  readonly lanes: LanesStack;
  readonly observability: ObservabilityStack;

  constructor(scope: Construct, id: string, props: CdcSyncStageProps) {
    const config = assertValidConfig(props.config);
    super(scope, id);
    this.config = config;
    const env: Environment = { account: config.account, region: config.region };
    const prefix = resourcePrefix(config);
    Tags.of(this).add('project', 'cdc-sync');
    Tags.of(this).add('environment', config.name);

    this.network = new NetworkStack(this, 'Network', {
      env,
      stackName: `${prefix}-network`,
      description: `cdc-sync ${config.name}: VPC, security groups, VPC endpoints`,
      config,
    });
    this.data = new DataStack(this, 'Data', {
      env,
      stackName: `${prefix}-data`,
      description: `cdc-sync ${config.name}: warehouse and audit buckets, dedupe table, cache, Glue catalog`,
      config,
      vpc: this.network.vpc,
      subnets: this.network.subnets,
      cacheSecurityGroup: this.network.cacheSecurityGroup,
    });
    this.streaming = new StreamingStack(this, 'Streaming', {
      env,
      stackName: `${prefix}-streaming`,
      description: `cdc-sync ${config.name}: MSK, topics, schema registry, MSK Connect + Debezium`,
      config,
      vpc: this.network.vpc,
      subnets: this.network.subnets,
      mskSecurityGroup: this.network.mskSecurityGroup,
      connectSecurityGroup: this.network.connectSecurityGroup,
      topicAdminSecurityGroup: this.network.topicAdminSecurityGroup,
    });
    this.lanes = new LanesStack(this, 'Lanes', {
      env,
      stackName: `${prefix}-lanes`,
      description: `cdc-sync ${config.name}: warehouse, cache and audit lanes with their event source mappings and DLQs`,
      config,
      network: this.network,
      data: this.data,
      streaming: this.streaming,
    });
    this.observability = new ObservabilityStack(this, 'Observability', {
      env,
      stackName: `${prefix}-observability`,
      description: `cdc-sync ${config.name}: dashboard, alarms, alarm topic`,
      config,
      data: this.data,
      streaming: this.streaming,
      lanes: this.lanes,
    });
  }
}
