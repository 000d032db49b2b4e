import { createHash } from 'node:crypto';
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { EnvironmentConfig } from './config';

/** The environment's removal policy for stateful resources (never used for the audit bucket or its key). */
export function removalPolicyOf(config: EnvironmentConfig): RemovalPolicy {
  return config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
}

/** Prefix of every physical name in an environment. */
export function resourcePrefix(config: EnvironmentConfig): string {
  return `cdc-sync-${config.name}`;
}

const RETENTION_DAYS = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number');

/** The smallest CloudWatch Logs retention that keeps logs at least `days` (CloudWatch only accepts fixed values). */
export function logRetention(days: number): logs.RetentionDays {
  const sorted = [...RETENTION_DAYS].filter((v) => v > 0 && v !== logs.RetentionDays.INFINITE).sort((a, b) => a - b);
  const match = sorted.find((v) => v >= days) ?? sorted[sorted.length - 1];
  return match as logs.RetentionDays;
}

/** Short stable hash, used to version names of resources CloudFormation can only replace (never update). */
export function shortHash(...parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 10);
}

/**
 * `actions` on a customer managed key for `grantee`, only when the request comes through `service` in the key's region
 * (`kms:ViaService`): the principal can use the key for that service's encryption, not to decrypt copies elsewhere.
 */
export function grantKeyVia(grantee: iam.IGrantable, key: kms.IKey, service: string, ...actions: string[]): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions,
      resources: [key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `${service}.${Stack.of(key).region}.amazonaws.com` } },
    }),
  );
}
