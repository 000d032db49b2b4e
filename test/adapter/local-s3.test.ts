import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { compareUtf8 } from '../../tools/local/memory-s3';
import { LOCAL_NAMES, type LocalServices, startLocalServices } from '../../tools/local/services';

const bucket = LOCAL_NAMES.warehouseBucket;

/** Names whose locale order and byte order disagree (case, punctuation, non-ASCII, astral characters). */
const NAMES = ['Orders', 'customers', 'order_items', 'orders+1', 'orders.v2', 'Zebra', 'émile', 'a😀', 'a\uffff'];

/** More keys than one listing page holds (1,000), spread over those names. */
const KEYS = Array.from({ length: 1_200 }, (_, i) => `list/${NAMES[i % NAMES.length]}/${String(i).padStart(4, '0')}`);
const byBytes = (keys: string[]) => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

async function putAll(s3: S3Client): Promise<void> {
  for (let i = 0; i < KEYS.length; i += 100) {
    await Promise.all(
      KEYS.slice(i, i + 100).map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x' }))),
    );
  }
}

/** Every key under `prefix`, page by page with ListObjects (v1), the next page after the last key of the previous. */
async function listV1(s3: S3Client, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let marker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker }));
    const found = (page.Contents ?? []).map((o) => o.Key as string);
    keys.push(...found);
    if (!page.IsTruncated) return keys;
    marker = found.at(-1);
  }
}

async function withServices(s3: 'memory' | 'files', work: (services: LocalServices) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'local-s3-'));
  const services = await startLocalServices({ redis: null, s3, ...(s3 === 'files' ? { dir } : {}) });
  try {
    await work(services);
  } finally {
    await services.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('local S3', () => {
  it('orders strings by their UTF-8 bytes, as S3 orders keys', () => {
    const strings = ['b', 'B', 'a', 'a\uffff', 'a😀', 'ab', '', 'é', 'Z', '_', '+', '.'];
    expect([...strings].sort(compareUtf8)).toEqual(byBytes(strings));
  });

  it('keeps throw-away objects in memory and state that must outlive the process in files', async () => {
    await withServices('memory', async ({ endpoints }) => expect(endpoints.s3).toBe(endpoints.sqs));
    await withServices('files', async ({ endpoints }) => expect(endpoints.s3).not.toBe(endpoints.sqs));
    const services = await startLocalServices({ redis: null });
    try {
      expect(services.endpoints.s3).toBe(services.endpoints.sqs);
    } finally {
      await services.stop();
    }
  });

  it.each(['memory', 'files'] as const)(
    'lists more than one page of mixed-case keys in byte order, each key once (%s)',
    async (s3) => {
      await withServices(s3, async ({ clients }) => {
        await putAll(clients.s3);
        expect(await listV1(clients.s3, 'list/')).toEqual(byBytes(KEYS));
      });
    },
  );

  it('pages ListObjectsV2 and groups common prefixes in byte order (memory)', async () => {
    await withServices('memory', async ({ clients }) => {
      await putAll(clients.s3);
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await clients.s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: 'list/', ContinuationToken: token, MaxKeys: 250 }),
        );
        keys.push(...(page.Contents ?? []).map((o) => o.Key as string));
        token = page.NextContinuationToken;
      } while (token);
      expect(keys).toEqual(byBytes(KEYS));

      const prefixes: string[] = [];
      let marker: string | undefined;
      for (;;) {
        const page = await clients.s3.send(
          new ListObjectsCommand({ Bucket: bucket, Prefix: 'list/', Delimiter: '/', Marker: marker, MaxKeys: 4 }),
        );
        const found = (page.CommonPrefixes ?? []).map((p) => p.Prefix as string);
        prefixes.push(...found);
        if (!page.IsTruncated) break;
        marker = found.at(-1);
      }
      expect(prefixes).toEqual(byBytes(NAMES.map((name) => `list/${name}/`)));
    });
  });
});
