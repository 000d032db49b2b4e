import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { type ChainProblem, verifyChain } from '../../functions/adapters/audit-chain';
import type { ChangeEvent } from '../../functions/core/types';
import { mapInOrder, READS_IN_FLIGHT } from './concurrency';

export interface ChainReport {
  /** `<topic>/<partition>/<epoch>` */
  chain: string;
  objects: number;
  entries: number;
  /** Of which schema history entries (not changes). */
  schemaEntries: number;
  problems: ChainProblem[];
}

export interface AuditReport {
  ok: boolean;
  chains: ChainReport[];
}

async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: token }));
    for (const o of page.Contents ?? []) if (o.Key?.endsWith('.ndjson.gz')) keys.push(o.Key);
    // ListObjects (v1) pages by the last key: s3rver cannot make v2 continuation tokens on Node 20 (DES).
    token = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
  } while (token);
  return keys;
}

async function readText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = await object.Body?.transformToByteArray();
  return gunzipSync(bytes ?? new Uint8Array()).toString('utf8');
}

/**
 * Verifies every hash chain under a prefix of the audit bucket: objects are grouped by chain
 * (`<prefix><topic>/<partition>/<epoch>/`) and read in sequence order. Returns where each chain breaks.
 * `onEvents` receives each chain's events (the local runner checks "every change exactly once" with them).
 */
export async function verifyAuditLog(
  s3: S3Client,
  bucket: string,
  prefix: string,
  onEvents?: (chain: string, events: ChangeEvent[]) => void,
): Promise<AuditReport> {
  const byChain = new Map<string, string[]>();
  for (const key of await listKeys(s3, bucket, prefix)) {
    const chain = key.slice(prefix.length, key.lastIndexOf('/'));
    byChain.set(chain, [...(byChain.get(chain) ?? []), key]);
  }
  const chains: ChainReport[] = [];
  for (const [chain, keys] of [...byChain].sort(([a], [b]) => a.localeCompare(b))) {
    keys.sort(); // object names are zero-padded first sequence numbers
    const objects = await mapInOrder(keys, READS_IN_FLIGHT, async (key) => ({
      key,
      text: await readText(s3, bucket, key),
    }));
    const check = verifyChain(objects);
    onEvents?.(chain, check.events);
    chains.push({
      chain,
      objects: keys.length,
      entries: check.entries,
      schemaEntries: check.schemaEntries,
      problems: check.problems,
    });
  }
  return { ok: chains.every((c) => c.problems.length === 0), chains };
}
