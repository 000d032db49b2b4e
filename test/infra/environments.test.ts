import { describe, expect, it } from 'vitest';
import { createApp } from '../../lib/app';
import { ENVIRONMENTS } from '../../lib/config';
import { throwawayDir } from '../support/scratch';

// What `npx cdk synth -c env=<name>` does, minus esbuild: the real app (feature flags, cdk-nag as a policy
// validation plugin that fails the synth on any unacknowledged finding) synthesised to a cloud assembly.
describe('every environment synthesises', () => {
  it.each(Object.keys(ENVIRONMENTS))('%s', (name) => {
    const { app } = createApp({
      context: { env: name, 'aws:cdk:bundling-stacks': [] },
      outdir: throwawayDir(`${name}-`),
    });

    const assembly = app.synth();

    // Top-level stacks (no nested Stage assembly), so `cdk deploy --all` selects them.
    expect(assembly.stacks.map((s) => s.stackName)).toEqual([
      `cdc-sync-${name}-network`,
      `cdc-sync-${name}-data`,
      `cdc-sync-${name}-streaming`,
      `cdc-sync-${name}-lanes`,
      `cdc-sync-${name}-observability`,
    ]);
    for (const stack of assembly.stacks) {
      expect(stack.environment).toMatchObject({ account: ENVIRONMENTS[name]?.account, region: 'eu-west-1' });
      expect(stack.messages.filter((m) => m.level === 'error')).toEqual([]);
    }
  });
});
