import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resourcesOf, type SynthesizedEnvironment, synthesize } from './support';

describe('network stack', () => {
  let dev: SynthesizedEnvironment;
  let prod: SynthesizedEnvironment;
  beforeAll(() => {
    dev = synthesize('dev');
    prod = synthesize('prod');
  });

  it('creates a VPC with private isolated subnets in the three configured AZs and no NAT gateway', () => {
    const template = dev.template('network');
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.40.0.0/16' });
    template.resourceCountIs('AWS::EC2::Subnet', 3);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    for (const az of dev.config.network.vpc.availabilityZones) {
      template.hasResourceProperties('AWS::EC2::Subnet', { AvailabilityZone: az, MapPublicIpOnLaunch: false });
    }
  });

  it('logs all VPC traffic', () => {
    dev.template('network').hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL' });
  });

  it('imports an existing VPC by id without creating one', () => {
    const template = prod.template('network');
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: 'vpc-0333333333333333a' });
  });

  it('lets Kafka clients reach the brokers on the IAM listener (9098) only', () => {
    const ingress = resourcesOf(dev.template('network'), 'AWS::EC2::SecurityGroupIngress').map(([, r]) => r.Properties);
    const toBrokers = ingress.filter((p) => JSON.stringify(p?.GroupId).includes('MskSecurityGroup'));
    expect(toBrokers.length).toBeGreaterThanOrEqual(3);
    for (const rule of toBrokers) expect(rule).toMatchObject({ IpProtocol: 'tcp', FromPort: 9098, ToPort: 9098 });
  });

  it('lets the signaller function reach the brokers on 9098 (it produces snapshot signals), and not the lanes', () => {
    const template = dev.template('network');
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MskSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SignallerSecurityGroup'), 'GroupId'] },
      FromPort: 9098,
      ToPort: 9098,
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SignallerSecurityGroup'), 'GroupId'] },
      DestinationSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MskSecurityGroup'), 'GroupId'] },
      FromPort: 9098,
      ToPort: 9098,
    });
    const ingress = resourcesOf(template, 'AWS::EC2::SecurityGroupIngress').map(([, r]) =>
      JSON.stringify(r.Properties),
    );
    expect(ingress.filter((r) => r.includes('MskSecurityGroup') && r.includes('LaneSecurityGroup'))).toEqual([]);
  });

  it('lets only the cache clients reach Valkey, on 6379', () => {
    dev.template('network').hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CacheSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CacheClientSecurityGroup'), 'GroupId'] },
      FromPort: 6379,
      ToPort: 6379,
    });
  });

  it('opens each source database port from the Debezium workers, and only that port', () => {
    const template = dev.template('network');
    // PostgreSQL behind a security group: egress from the workers and ingress into the database group.
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: 'sg-0123456789abcdef0',
      FromPort: 5432,
      ToPort: 5432,
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ConnectSecurityGroup'), 'GroupId'] },
    });
    // MySQL by CIDR.
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'MSK Connect Debezium workers',
      SecurityGroupEgress: Match.arrayWith([
        Match.objectLike({ CidrIp: '10.50.12.0/24', FromPort: 3306, ToPort: 3306, IpProtocol: 'tcp' }),
      ]),
    });
  });

  it('allows no inbound traffic from anywhere', () => {
    const template = dev.template('network');
    const ingress = [
      ...resourcesOf(template, 'AWS::EC2::SecurityGroupIngress').map(([, r]) => r.Properties),
      ...resourcesOf(template, 'AWS::EC2::SecurityGroup').flatMap(
        ([, r]) => (r.Properties?.SecurityGroupIngress as unknown[] | undefined) ?? [],
      ),
    ];
    expect(JSON.stringify(ingress)).not.toContain('0.0.0.0/0');
  });

  it.each([['sqs'], ['secretsmanager'], ['logs'], ['monitoring'], ['glue'], ['lambda'], ['sts'], ['xray']])(
    'reaches %s through a private interface endpoint (no NAT)',
    (service) => {
      dev.template('network').hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Interface',
        PrivateDnsEnabled: true,
        ServiceName: `com.amazonaws.eu-west-1.${service}`,
      });
    },
  );

  it.each([['s3'], ['dynamodb']])('reaches %s through a gateway endpoint', (service) => {
    dev.template('network').hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, `.${service}`]] },
    });
  });
});
