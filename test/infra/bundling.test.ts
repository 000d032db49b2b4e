import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../lib/app';
import { LANE_NAMES } from '../../lib/config';
import { BUNDLING, REPO_ROOT } from '../../lib/constructs/node-function';
import { throwawayDir } from '../support/scratch';

// The one infra test that needs the lanes' real code (functions/<lane>/index.ts and what it imports): it runs the
// local esbuild exactly as `cdk synth` does, so a handler that does not bundle as ESM fails here, not at deploy.
describe('lane bundles (needs the handler code in functions/)', () => {
  it('bundles every function of the lanes stack with the local esbuild into a minified ESM module with a source map', {
    timeout: 120_000,
  }, () => {
    // Arrange: bundle the lanes stack only (the other stacks' functions are custom resource handlers).
    const outdir = throwawayDir('bundles-');
    const { app } = createApp({
      context: { env: 'dev', 'aws:cdk:bundling-stacks': ['dev/Lanes'] },
      nag: false,
      outdir,
    });

    // Act
    const assembly = app.synth();

    // Assert
    const template = assembly.getStackByName('cdc-sync-dev-lanes').template as {
      Resources: Record<string, { Type: string; Properties: { FunctionName?: string } }>;
    };
    const functions = [...LANE_NAMES, 'signaller', 'current-state', 'compaction'];
    for (const name of functions) {
      const fn = Object.entries(template.Resources).find(
        ([, r]) => r.Type === 'AWS::Lambda::Function' && r.Properties.FunctionName === `cdc-sync-dev-${name}`,
      );
      expect(fn, name).toBeDefined();
    }
    // Staged bundles live next to the assemblies, one asset.<hash> directory each.
    const bundles = readdirSync(outdir)
      .map((entry) => join(outdir, entry))
      .filter((dir) => existsSync(join(dir, 'index.mjs')));
    // The lanes, the signaller, the current-state merge and the compaction.
    expect(bundles).toHaveLength(functions.length);
    for (const dir of bundles) {
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(code).toMatch(/export\s*\{[^}]*\bas handler\b|export\s*\{[^}]*\bhandler\b/);
      expect(code).toContain('__cdcSyncCreateRequire');
      expect(code).toMatch(/\/\/# sourceMappingURL=index\.mjs\.map\s*$/);
      expect(existsSync(join(dir, 'index.mjs.map'))).toBe(true);
    }
  });
});

/** The source files esbuild takes into a bundle of `entry` with the functions' settings (ESM, BUNDLING), unwritten. */
async function bundledInputs(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [join(REPO_ROOT, entry)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: BUNDLING.target,
    mainFields: BUNDLING.mainFields,
    metafile: true,
    write: false,
    logLevel: 'silent',
  });
  return Object.keys(result.metafile.inputs);
}

// Module init is cold-start time (`npm run bench`, initVsUnbundled): the lanes hand snapshot signals to the signaller
// function through SQS so that kafkajs and the MSK IAM signer are in no lane bundle, not even behind a lazy import
// (esbuild inlines those, and the bytes are still parsed at init).
describe('Kafka client placement', () => {
  const kafkaInputs = async (entry: string) =>
    (await bundledInputs(entry)).filter((input) => /node_modules\/(kafkajs|aws-msk-iam-sasl-signer-js)\//.test(input));

  it.each(LANE_NAMES)('leaves kafkajs out of the %s lane bundle', { timeout: 60_000 }, async (lane) => {
    expect(await kafkaInputs(`functions/${lane}/index.ts`)).toEqual([]);
  });

  it('bundles kafkajs and the MSK IAM signer into the signaller function', { timeout: 60_000 }, async () => {
    const inputs = await kafkaInputs('functions/signaller/index.ts');
    expect(inputs.some((i) => i.includes('node_modules/kafkajs/'))).toBe(true);
    expect(inputs.some((i) => i.includes('node_modules/aws-msk-iam-sasl-signer-js/'))).toBe(true);
  });
});

describe('connector custom resource bundle', () => {
  it('bundles the handlers with the AWS SDK clients they call (MSK Connect, DynamoDB)', {
    timeout: 60_000,
  }, async () => {
    const inputs = await bundledInputs('lib/custom-resources/connector/index.ts');
    expect(inputs.some((i) => i.includes('node_modules/@aws-sdk/client-kafkaconnect/'))).toBe(true);
    expect(inputs.some((i) => i.includes('node_modules/@aws-sdk/client-dynamodb/'))).toBe(true);
  });
});

describe('topics custom resource bundle', () => {
  it('bundles the handler with kafkajs and the MSK IAM signer that makes its OAUTHBEARER token', {
    timeout: 60_000,
  }, async () => {
    const inputs = await bundledInputs('lib/custom-resources/topics/index.ts');
    expect(inputs.some((i) => i.includes('node_modules/kafkajs/'))).toBe(true);
    expect(inputs.some((i) => i.includes('node_modules/aws-msk-iam-sasl-signer-js/'))).toBe(true);
  });
});
