import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface SecureBucketProps {
  /** Customer managed key for SSE-KMS (S3 Bucket Keys on, to keep KMS request costs flat). */
  readonly encryptionKey: kms.IKey;
  /** Bucket receiving S3 server access logs. */
  readonly accessLogsBucket: s3.IBucket;
  /** Key prefix of this bucket's access logs in `accessLogsBucket`. */
  readonly accessLogsPrefix: string;
  readonly removalPolicy: RemovalPolicy;
  /** Object Lock default retention in compliance mode, days. Enables versioning and Object Lock. @default none */
  readonly objectLockComplianceDays?: number;
  /** Expire objects after this many days. @default never */
  readonly expireAfterDays?: number;
  /** @default false */
  readonly versioned?: boolean;
}

/**
 * An S3 bucket with the platform's non-negotiable defaults: public access blocked, TLS enforced by bucket policy,
 * SSE-KMS with a customer managed key, server access logging, bucket-owner-enforced ownership. Objects of a bucket
 * whose removal policy is DESTROY are emptied on stack deletion; a bucket with Object Lock is always retained.
 */
export class SecureBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: SecureBucketProps) {
    super(scope, id);
    const locked = props.objectLockComplianceDays !== undefined;
    // Object Lock data must never be auto-deleted, whatever the environment's removal policy says.
    const removalPolicy = locked ? RemovalPolicy.RETAIN : props.removalPolicy;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.encryptionKey,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: props.accessLogsPrefix,
      versioned: locked || props.versioned === true,
      objectLockEnabled: locked ? true : undefined,
      objectLockDefaultRetention: locked
        ? s3.ObjectLockRetention.compliance(Duration.days(props.objectLockComplianceDays))
        : undefined,
      lifecycleRules:
        props.expireAfterDays === undefined
          ? undefined
          : [
              {
                id: 'expire',
                expiration: Duration.days(props.expireAfterDays),
                noncurrentVersionExpiration: Duration.days(1),
                abortIncompleteMultipartUploadAfter: Duration.days(1),
              },
            ],
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    });
  }
}
