import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resourcesOf, type SynthesizedEnvironment, synthesize } from './support';

describe('data stack', () => {
  let dev: SynthesizedEnvironment;
  let prod: SynthesizedEnvironment;
  beforeAll(() => {
    dev = synthesize('dev');
    prod = synthesize('prod');
  });

  it('encrypts every data bucket with a customer managed KMS key', () => {
    const buckets = resourcesOf(dev.template('data'), 'AWS::S3::Bucket');
    const kmsBuckets = buckets.filter(([id]) => !id.startsWith('AccessLogsBucket'));
    expect(kmsBuckets.map(([id]) => id)).toEqual([
      expect.stringMatching(/^WarehouseBucket/),
      expect.stringMatching(/^FailuresBucket/),
      expect.stringMatching(/^AuditBucket/),
      expect.stringMatching(/^WarehouseCatalogAthenaResultsBucket/),
    ]);
    for (const [, bucket] of kmsBuckets) {
      expect(bucket.Properties?.BucketEncryption).toMatchObject({
        ServerSideEncryptionConfiguration: [
          { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } },
        ],
      });
    }
  });

  it('encrypts the access log bucket with SSE-S3, the only encryption S3 log delivery supports', () => {
    dev.template('data').hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 30, Status: 'Enabled' })] },
    });
  });

  it('counts the failed batches the event source mappings write to the failure bucket (request metrics)', () => {
    const [[, failures] = ['', {}]] = resourcesOf(dev.template('data'), 'AWS::S3::Bucket').filter(([id]) =>
      id.startsWith('FailuresBucket'),
    );
    expect(failures.Properties?.MetricsConfigurations).toEqual([{ Id: 'failed-batches', Prefix: 'aws/lambda/' }]);
  });

  it('blocks public access on every bucket', () => {
    for (const [, bucket] of resourcesOf(dev.template('data'), 'AWS::S3::Bucket')) {
      expect(bucket.Properties?.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
    }
  });

  it('denies non-TLS requests on every bucket', () => {
    const policies = resourcesOf(dev.template('data'), 'AWS::S3::BucketPolicy');
    expect(policies).toHaveLength(5);
    for (const [, policy] of policies) {
      expect(policy.Properties?.PolicyDocument).toMatchObject({
        Statement: expect.arrayContaining([
          expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      });
    }
  });

  it('logs access to every data bucket', () => {
    const buckets = resourcesOf(dev.template('data'), 'AWS::S3::Bucket').filter(
      ([id]) => !id.startsWith('AccessLogsBucket'),
    );
    for (const [, bucket] of buckets) {
      expect(bucket.Properties?.LoggingConfiguration).toMatchObject({
        DestinationBucketName: { Ref: expect.stringMatching(/^AccessLogsBucket/) },
      });
    }
  });

  it('locks audit objects in compliance mode for the environment retention', () => {
    dev.template('data').hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 1 } },
      },
      VersioningConfiguration: { Status: 'Enabled' },
    });
    prod.template('data').hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: { Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2557 } } },
    });
  });

  it('never deletes the audit bucket or its key, even where the environment destroys data', () => {
    const template = dev.template('data');
    template.hasResource('AWS::S3::Bucket', {
      Properties: { ObjectLockEnabled: true },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.hasResource('AWS::KMS::Key', {
      Properties: { Description: Match.stringLikeRegexp('audit bucket') },
      DeletionPolicy: 'Retain',
    });
    template.hasResource('AWS::S3::Bucket', {
      Properties: { BucketEncryption: Match.anyValue(), ObjectLockEnabled: Match.absent() },
      DeletionPolicy: 'Delete',
    });
  });

  it('denies deleting audit objects to everyone', () => {
    dev.template('data').hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^AuditBucket') },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'DenyAuditDeletes',
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutLifecycleConfiguration'],
          }),
        ]),
      },
    });
  });

  it('keeps dedupe checkpoints in an on-demand table with TTL, PITR and KMS', () => {
    dev.template('data').hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() },
    });
  });

  it('protects the dedupe table from deletion where data is retained', () => {
    prod.template('data').hasResource('AWS::DynamoDB::Table', {
      Properties: { DeletionProtectionEnabled: true },
      DeletionPolicy: 'Retain',
    });
  });

  it('runs the cache on ElastiCache Serverless Valkey, KMS-encrypted, in the private subnets', () => {
    dev.template('data').hasResourceProperties('AWS::ElastiCache::ServerlessCache', {
      Engine: 'valkey',
      MajorEngineVersion: '8',
      KmsKeyId: Match.anyValue(),
      SecurityGroupIds: [{ 'Fn::ImportValue': Match.stringLikeRegexp('CacheSecurityGroup') }],
      SubnetIds: [
        { 'Fn::ImportValue': Match.stringLikeRegexp('privateSubnet1') },
        { 'Fn::ImportValue': Match.stringLikeRegexp('privateSubnet2') },
        { 'Fn::ImportValue': Match.stringLikeRegexp('privateSubnet3') },
      ],
      CacheUsageLimits: { DataStorage: { Maximum: 1, Unit: 'GB' }, ECPUPerSecond: { Maximum: 5000 } },
    });
  });

  it('rotates every KMS key', () => {
    for (const [, key] of resourcesOf(dev.template('data'), 'AWS::KMS::Key')) {
      expect(key.Properties?.EnableKeyRotation).toBe(true);
    }
  });

  it('outputs the failure bucket name (FailureBucketName), where npm run status finds failed batches', () => {
    const [[failuresId] = ['']] = resourcesOf(dev.template('data'), 'AWS::S3::Bucket').filter(([id]) =>
      id.startsWith('FailuresBucket'),
    );

    expect(failuresId).toMatch(/^FailuresBucket/);
    dev.template('data').hasOutput('FailureBucketName', { Value: { Ref: failuresId } });
    expect(dev.template('data').findOutputs('FailureBucketName').FailureBucketName?.Export).toBeUndefined();
  });

  it('keeps the PII hash salt in Secrets Manager, encrypted with the data key', () => {
    dev.template('data').hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { PasswordLength: 48, ExcludePunctuation: true },
      KmsKeyId: Match.anyValue(),
    });
  });
});
