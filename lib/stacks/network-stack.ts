import { Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config';
import { logRetention, removalPolicyOf } from '../util';

export interface NetworkStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

const KAFKA_IAM_PORT = 9098;
const VALKEY_PORT = 6379;
const HTTPS_PORT = 443;

/**
 * The VPC (new, or imported by id), the security groups of every component and the VPC endpoints that let them
 * reach AWS services without a NAT gateway. Security groups start with no egress and only open the ports a
 * component needs: Kafka over IAM (9098), the source databases, Valkey (6379) and HTTPS to the endpoints.
 */
export class NetworkStack extends Stack {
  readonly vpc: ec2.IVpc;
  /** The private subnets everything runs in, one per availability zone. */
  readonly subnets: ec2.SubnetSelection;
  /** Brokers, and the event source mappings' network interfaces (Lambda places them in the cluster's SGs). */
  readonly mskSecurityGroup: ec2.SecurityGroup;
  /** MSK Connect workers (Debezium). */
  readonly connectSecurityGroup: ec2.SecurityGroup;
  /** Every lane function. */
  readonly laneSecurityGroup: ec2.SecurityGroup;
  /** Added to the cache lane only: the one client allowed to reach Valkey. */
  readonly cacheClientSecurityGroup: ec2.SecurityGroup;
  /** The ElastiCache Serverless cache. */
  readonly cacheSecurityGroup: ec2.SecurityGroup;
  /** The topic admin function used with MSK Serverless (which has no topic API). */
  readonly topicAdminSecurityGroup: ec2.SecurityGroup;
  /** The signaller function: the only function besides Debezium that produces to Kafka (the signal topics). */
  readonly signallerSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkStackProps) {
    super(scope, id, props);
    const { config } = props;

    if (config.network.vpc.kind === 'new') {
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(config.network.vpc.cidr),
        availabilityZones: [...config.network.vpc.availabilityZones],
        natGateways: 0,
        // Private only: nothing here needs the internet. AWS services are reached through the endpoints below.
        subnetConfiguration: [{ name: 'private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }],
        restrictDefaultSecurityGroup: true,
      });
      const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
        retention: logRetention(config.network.vpc.flowLogRetentionDays),
        removalPolicy: removalPolicyOf(config),
      });
      vpc.addFlowLog('FlowLog', {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
        trafficType: ec2.FlowLogTrafficType.ALL,
      });
      this.vpc = vpc;
      this.subnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    } else {
      const imported = config.network.vpc;
      // fromVpcAttributes instead of fromLookup: synth must work offline, without credentials.
      this.vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: imported.vpcId,
        vpcCidrBlock: imported.vpcCidr,
        availabilityZones: [...imported.availabilityZones],
        privateSubnetIds: [...imported.privateSubnetIds],
        privateSubnetRouteTableIds: [...imported.privateSubnetRouteTableIds],
      });
      this.subnets = { subnets: this.vpc.privateSubnets };
    }

    const sg = (id: string, description: string) =>
      new ec2.SecurityGroup(this, id, { vpc: this.vpc, description, allowAllOutbound: false });
    this.mskSecurityGroup = sg('MskSecurityGroup', 'MSK brokers and the Lambda event source mapping ENIs');
    this.connectSecurityGroup = sg('ConnectSecurityGroup', 'MSK Connect Debezium workers');
    this.laneSecurityGroup = sg('LaneSecurityGroup', 'cdc-sync lane functions');
    this.cacheClientSecurityGroup = sg('CacheClientSecurityGroup', 'Clients of the Valkey cache (cache lane)');
    this.cacheSecurityGroup = sg('CacheSecurityGroup', 'ElastiCache Serverless (Valkey)');
    this.topicAdminSecurityGroup = sg('TopicAdminSecurityGroup', 'Topic admin function (MSK Serverless topics)');
    this.signallerSecurityGroup = sg('SignallerSecurityGroup', 'Signaller function (Debezium signal topics)');
    const endpointSecurityGroup = sg('EndpointSecurityGroup', 'Interface VPC endpoints');

    const kafka = ec2.Port.tcp(KAFKA_IAM_PORT);
    // Lambda's event source mapping puts its pollers' ENIs in the cluster's subnets and security groups, so the
    // cluster group must let its own members in (and out) on the IAM listener.
    this.mskSecurityGroup.addIngressRule(this.mskSecurityGroup, kafka, 'Kafka IAM from event source mappings');
    this.mskSecurityGroup.addEgressRule(this.mskSecurityGroup, kafka, 'Event source mappings to brokers');
    for (const client of [this.connectSecurityGroup, this.topicAdminSecurityGroup, this.signallerSecurityGroup]) {
      this.mskSecurityGroup.addIngressRule(client, kafka, `Kafka IAM from ${client.node.id}`);
      client.addEgressRule(this.mskSecurityGroup, kafka, 'Kafka IAM to brokers');
    }

    const valkey = ec2.Port.tcp(VALKEY_PORT);
    this.cacheSecurityGroup.addIngressRule(this.cacheClientSecurityGroup, valkey, 'Valkey TLS from the cache lane');
    this.cacheClientSecurityGroup.addEgressRule(this.cacheSecurityGroup, valkey, 'Valkey TLS to the cache');

    // HTTPS egress to any address: the subnets have no internet route (no IGW, no NAT in a new VPC), so 443 only
    // reaches the interface endpoints and the S3/DynamoDB gateway endpoints. The gateway endpoints are addressed by
    // AWS-managed prefix lists whose ids cannot be resolved at synth time without a lookup.
    const https = ec2.Port.tcp(HTTPS_PORT);
    for (const client of [
      this.laneSecurityGroup,
      this.connectSecurityGroup,
      this.mskSecurityGroup,
      this.signallerSecurityGroup,
    ]) {
      client.addEgressRule(ec2.Peer.anyIpv4(), https, 'HTTPS to AWS services through VPC endpoints');
      endpointSecurityGroup.addIngressRule(client, https, `HTTPS from ${client.node.id}`);
    }

    // Debezium reaches each source database on its own port only. With a security group, the stack also lets the
    // connector into the database's group, so no manual rule is needed.
    for (const source of config.sources) {
      const port = ec2.Port.tcp(source.port);
      if (source.network.securityGroupId !== undefined) {
        const dbGroup = ec2.SecurityGroup.fromSecurityGroupId(
          this,
          `SourceDbSecurityGroup-${source.name}`,
          source.network.securityGroupId,
          { allowAllOutbound: false, mutable: true },
        );
        this.connectSecurityGroup.addEgressRule(dbGroup, port, `Debezium to source ${source.name}`);
        dbGroup.addIngressRule(this.connectSecurityGroup, port, `cdc-sync ${config.name} Debezium (${source.name})`);
      }
      if (source.network.cidr !== undefined) {
        this.connectSecurityGroup.addEgressRule(
          ec2.Peer.ipv4(source.network.cidr),
          port,
          `Debezium to source ${source.name}`,
        );
      }
    }

    const createEndpoints = config.network.vpc.kind === 'new' || config.network.vpc.createEndpoints !== false;
    if (createEndpoints) {
      this.vpc.addGatewayEndpoint('S3Endpoint', {
        service: ec2.GatewayVpcEndpointAwsService.S3,
        subnets: [this.subnets],
      });
      this.vpc.addGatewayEndpoint('DynamoDbEndpoint', {
        service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
        subnets: [this.subnets],
      });
      const interfaceEndpoints: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
        // Lanes: dead letters, PII salt, Powertools metrics/traces.
        Sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
        SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        CloudWatchLogs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
        CloudWatchMonitoring: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
        XRay: ec2.InterfaceVpcEndpointAwsService.XRAY,
        // Debezium: Avro schemas in the Glue Schema Registry, credentials via the config provider.
        Glue: ec2.InterfaceVpcEndpointAwsService.GLUE,
        // Event source mappings without a NAT need Lambda and STS endpoints (Lambda developer guide, "Configuring
        // AWS PrivateLink endpoints for an MSK event source").
        Lambda: ec2.InterfaceVpcEndpointAwsService.LAMBDA,
        Sts: ec2.InterfaceVpcEndpointAwsService.STS,
      };
      for (const [name, service] of Object.entries(interfaceEndpoints)) {
        this.vpc.addInterfaceEndpoint(`${name}Endpoint`, {
          service,
          subnets: this.subnets,
          privateDnsEnabled: true,
          securityGroups: [endpointSecurityGroup],
          // Not "open" to the whole VPC CIDR: only the groups above may use the endpoints.
          open: false,
        });
      }
    }
  }
}
