import { spawnSync } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type BuildOptions, build } from 'esbuild';
import { BUNDLING } from '../../lib/constructs/node-function';

/**
 * Cold-start module init: the lane handler bundled as we deploy it (esbuild, minified ESM, everything inlined and
 * tree-shaken) versus the same handler unbundled (our code transpiled, dependencies loaded from node_modules the
 * way a zip of node_modules would). Each is imported in a fresh Node process, alternately, and the medians compared.
 */
async function bundle(entry: string, outfile: string, external: boolean): Promise<void> {
  // The same esbuild options the CDK NodejsFunction uses (lib/constructs/node-function.ts).
  const options: BuildOptions = {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: BUNDLING.target,
    minify: BUNDLING.minify,
    sourcemap: BUNDLING.sourceMap,
    mainFields: BUNDLING.mainFields,
    banner: BUNDLING.banner ? { js: BUNDLING.banner } : undefined,
    packages: external ? 'external' : undefined,
    logLevel: 'error',
  };
  await build(options);
}

function importMs(file: string, env: NodeJS.ProcessEnv): number {
  const probe = join(import.meta.dirname, 'init-probe.mjs');
  const run = spawnSync(process.execPath, ['--no-warnings', probe, file], { env, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`init probe failed for ${file}: ${run.stderr}`);
  return Number(run.stdout.trim());
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export async function measureInit(lane: 'warehouse' | 'cache' | 'audit', runs = 15) {
  const dir = join(process.cwd(), 'dist', 'bench');
  await mkdir(dir, { recursive: true });
  const entry = join(process.cwd(), 'functions', lane, 'index.ts');
  const bundled = join(dir, `${lane}.bundled.mjs`);
  const unbundled = join(dir, `${lane}.unbundled.mjs`);
  await bundle(entry, bundled, false);
  await bundle(entry, unbundled, true);
  const env = {
    ...process.env,
    DEDUPE_TABLE_NAME: 'bench',
    DLQ_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/dlq',
    DLQ_PAYLOAD_BUCKET: 'bench',
    WAREHOUSE_BUCKET: 'bench',
    AUDIT_BUCKET: 'bench',
    REDIS_URL: 'redis://127.0.0.1:6379',
    AWS_REGION: 'eu-west-1',
    POWERTOOLS_TRACE_ENABLED: 'false',
  };
  const a: number[] = [];
  const b: number[] = [];
  importMs(bundled, env); // warm the file cache
  importMs(unbundled, env);
  for (let i = 0; i < runs; i++) {
    a.push(importMs(bundled, env));
    b.push(importMs(unbundled, env));
  }
  return {
    bundledMs: median(a),
    unbundledMs: median(b),
    bundleBytes: (await stat(bundled)).size,
  };
}
