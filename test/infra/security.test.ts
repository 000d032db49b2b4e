import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../lib/app';
import { ENVIRONMENTS } from '../../lib/config';
import { CdcSyncNagChecks } from '../../lib/nag';
import { throwawayDir } from '../support/scratch';
import { nagFindings, resourcesOf, STACKS, type StackName, type SynthesizedEnvironment, synthesize } from './support';

const cases = Object.keys(ENVIRONMENTS).flatMap((env) => STACKS.map((stack) => [env, stack] as [string, StackName]));

describe('security', () => {
  const environments = new Map<string, SynthesizedEnvironment>();
  beforeAll(() => {
    for (const name of Object.keys(ENVIRONMENTS)) environments.set(name, synthesize(name));
  });
  const env = (name: string) => environments.get(name) as SynthesizedEnvironment;

  it.each(cases)('%s/%s has no unacknowledged cdk-nag AwsSolutions finding (errors or warnings)', (name, stack) => {
    expect(nagFindings(env(name).stack(stack))).toEqual([]);
  });

  it('fails the synth of the app on an unacknowledged finding', () => {
    // Arrange: the real app (nag plugin on) plus a bucket without access logging or TLS enforcement.
    const { app, stage } = createApp({
      context: { env: 'dev', 'aws:cdk:bundling-stacks': [] },
      outdir: throwawayDir('nag-'),
    });
    new s3.Bucket(stage.data, 'UnloggedBucket');

    // Act + Assert
    expect(() => app.synth()).toThrow(/server access logs disabled/);
  });

  it('acknowledges exactly the wildcards declared, with exactly their actions', () => {
    // Arrange: a fresh dev environment, the warehouse lane granted a new action on its acknowledged change-log
    // wildcard, and a new wildcard that the old pattern-style acknowledgements (`…/*`) would have let through.
    const fresh = synthesize('dev');
    const lane = fresh.stage.lanes.functions.warehouse;
    const bucket = fresh.stage.data.warehouseBucket;
    lane.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: [bucket.arnForObjects('changes/*')] }),
    );
    lane.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [bucket.arnForObjects('elsewhere/*')] }),
    );

    // Act
    const findings = nagFindings(fresh.stack('lanes'));

    // Assert
    expect(findings).toEqual([
      'AwsSolutions-IAM5[Resource::<WarehouseBucket56A35794.Arn>/changes/*] @ dev/Lanes/WarehouseLane/ServiceRole/DefaultPolicy/Resource',
      'AwsSolutions-IAM5[Resource::<WarehouseBucket56A35794.Arn>/elsewhere/*] @ dev/Lanes/WarehouseLane/ServiceRole/DefaultPolicy/Resource',
    ]);
  });

  it.each(cases)(
    '%s/%s uses customer managed keys only through a named AWS service (kms:ViaService)',
    (name, stack) => {
      const statements = resourcesOf(env(name).template(stack), 'AWS::IAM::Policy').flatMap(([, policy]) => {
        const document = policy.Properties?.PolicyDocument as { Statement: Array<Record<string, unknown>> };
        return document.Statement;
      });
      const kms = statements.filter((s) => [s.Action].flat().some((action) => String(action).startsWith('kms:')));
      for (const statement of kms) {
        expect((statement.Condition as { StringEquals?: Record<string, unknown> })?.StringEquals).toHaveProperty(
          'kms:ViaService',
        );
      }
    },
  );

  it('acknowledges findings only with a reason', () => {
    const checks = new CdcSyncNagChecks();
    for (const stack of STACKS) checks.validateScope(env('dev').stack(stack));
    expect(checks.acknowledged.length).toBeGreaterThan(0);
    for (const finding of checks.acknowledged) expect(finding.reason.length).toBeGreaterThan(30);
  });

  it.each(cases)('%s/%s grants no wildcard action in any IAM policy', (name, stack) => {
    const template = env(name).template(stack);
    const statements = resourcesOf(template, 'AWS::IAM::Policy').flatMap(([, policy]) => {
      const document = policy.Properties?.PolicyDocument as { Statement: Array<{ Action: string | string[] }> };
      return document.Statement;
    });
    const wildcards = statements.flatMap((s) => [s.Action].flat()).filter((action) => action.includes('*'));
    expect(wildcards).toEqual([]);
  });
});
