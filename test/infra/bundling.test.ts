import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../lib/app';
import { LANE_NAMES } from '../../lib/config';
import { throwawayDir } from '../support/scratch';

// The one infra test that needs the lanes' real code (functions/<lane>/index.ts and what it imports): it runs the
// local esbuild exactly as `cdk synth` does, so a handler that does not bundle as ESM fails here, not at deploy.
describe('lane bundles (needs the handler code in functions/)', () => {
  it('bundles every lane with the local esbuild into a minified ESM module with a source map', {
    timeout: 120_000,
  }, () => {
    // Arrange: bundle the lanes stack only (the other stacks' functions are not lanes).
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
    for (const lane of LANE_NAMES) {
      const fn = Object.entries(template.Resources).find(
        ([, r]) => r.Type === 'AWS::Lambda::Function' && r.Properties.FunctionName === `cdc-sync-dev-${lane}`,
      );
      expect(fn, lane).toBeDefined();
    }
    // Staged bundles live next to the assemblies, one asset.<hash> directory each.
    const bundles = readdirSync(outdir)
      .map((entry) => join(outdir, entry))
      .filter((dir) => existsSync(join(dir, 'index.mjs')));
    expect(bundles).toHaveLength(LANE_NAMES.length);
    for (const dir of bundles) {
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(code).toMatch(/export\s*\{[^}]*\bas handler\b|export\s*\{[^}]*\bhandler\b/);
      expect(code).toContain('__cdcSyncCreateRequire');
      expect(code).toMatch(/\/\/# sourceMappingURL=index\.mjs\.map\s*$/);
      expect(existsSync(join(dir, 'index.mjs.map'))).toBe(true);
    }
  });
});
