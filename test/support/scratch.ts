import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the global setup puts the run's scratch root (and its teardown removes it). */
export const SCRATCH_ENV = 'CDC_SYNC_TEST_SCRATCH';

/**
 * A fresh directory for what a test writes and nobody reads afterwards (CDK cloud assemblies, bundles), under the
 * test run's scratch root, which the global teardown removes: synthesizing every environment leaves tens of
 * megabytes per run otherwise. Test processes are killed rather than exited, so they cannot clean up themselves.
 */
export function throwawayDir(prefix: string): string {
  return mkdtempSync(join(process.env[SCRATCH_ENV] ?? tmpdir(), prefix));
}
