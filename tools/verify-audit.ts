/**
 * npm run verify-audit -- [--bucket <name>] [--prefix audit/] [--local [dir]] [--json]
 *
 * Checks the hash chains of the audit log under a prefix and says where a chain breaks (object, line, sequence,
 * what is wrong). Exit code 0 when every chain is intact, 1 when one is broken.
 * Default: the local state of `npm run invoke` (.local/invoke). --bucket without --local reads real S3 with the
 * default AWS credentials (the lane needs s3:ListBucket and s3:GetObject on the audit bucket).
 */
import { resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { parseFlagsOrExit } from './lib/args';
import { verifyAuditLog } from './lib/audit-verify';
import { fail, reserveStdout } from './lib/cli';
import { LOCAL_NAMES } from './local/services';

const USAGE = 'usage: npm run verify-audit -- [--bucket <name>] [--prefix audit/] [--local [dir]] [--json]';

const FLAGS = {
  bucket: { type: 'string' },
  prefix: { type: 'string' },
  local: { type: 'string', optionalValue: true },
  json: { type: 'boolean' },
} as const;

async function main(): Promise<void> {
  const out = reserveStdout();
  const { values: flags } = parseFlagsOrExit(process.argv.slice(2), FLAGS, USAGE);
  const prefix = flags.prefix ?? 'audit/';
  const bucketFlag = flags.bucket;
  const local = flags.local !== undefined || bucketFlag === undefined;
  let s3: S3Client;
  let server: S3rver | undefined;
  if (local) {
    const dir = typeof flags.local === 'string' ? flags.local : '.local/invoke';
    server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: resolve(dir, 's3') });
    const { port } = await server.run();
    s3 = new S3Client({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'eu-west-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
  } else {
    s3 = new S3Client({});
  }
  const bucket = bucketFlag ?? LOCAL_NAMES.auditBucket;
  try {
    const report = await verifyAuditLog(s3, bucket, prefix);
    if (flags.json) out(`${JSON.stringify(report)}\n`);
    else {
      for (const c of report.chains) {
        out(
          `${c.problems.length === 0 ? 'ok    ' : 'BROKEN'} ${c.chain}: ${c.entries} entries in ${c.objects} objects\n`,
        );
        for (const p of c.problems) out(`       ${p.kind} at ${p.object} line ${p.line}: ${JSON.stringify(p)}\n`);
      }
      out(
        report.chains.length === 0
          ? `no audit objects under s3://${bucket}/${prefix}\n`
          : report.ok
            ? 'all chains intact\n'
            : 'chain broken\n',
      );
    }
    process.exitCode = report.ok ? 0 : 1;
  } catch (error) {
    fail(`cannot read s3://${bucket}/${prefix}: ${(error as Error).message}`);
  } finally {
    s3.destroy();
    await server?.close();
  }
}

await main();
