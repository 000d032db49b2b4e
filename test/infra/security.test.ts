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
